"""The one-screen summary's RL, SFT-precision and SFT-guard lines (gream_pipeline.summary)."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from gream_pipeline.summary import rl_lines, sft_precision_line, training_cut_short

PAIRED = {"direct": {"users": 2000, "srpo-before": {"recall@10": {"diff": -0.0005, "lo": -0.0055, "hi": 0.0045}}}}


def test_rl_line_reports_kept_groups_and_the_paired_interval():
    summary = {"mode": "direct", "srpo": {"advantage": "srpo", "steps": 100, "kept_groups": 90, "groups": 400,
                                          "exact_rate": 0.05}, "paired": PAIRED}
    line, warning = rl_lines(summary)
    assert line == ("RL (SRPO, direct prompts): 100 steps, 90 of 400 groups kept, exact-hit rate 0.050; validation "
                    "Recall@10 (direct, 2000 users) -0.0005 (95 % CI -0.0055 to +0.0045)")
    assert warning == ""


def test_rl_warning_when_every_group_was_dropped():
    summary = {"mode": "direct", "srpo": {"steps": 20, "kept_groups": 0, "groups": 80, "exact_rate": 0.0}}
    line, warning = rl_lines(summary)
    assert line.startswith("RL (SRPO, direct prompts): 20 steps, 0 of 80 groups kept")
    assert "policy was not updated" in warning
    assert rl_lines({"backend": "verl", "metrics": {}}) == ("", "")
    summary["srpo"].update(steps=10, groups=40, max_steps=100, stopped_early={"at_step": 10, "empty_batches": 10})
    line, _ = rl_lines(summary)
    assert line == ("RL (SRPO, direct prompts): 10 steps, 0 of 40 groups kept, exact-hit rate 0.000 (stopped at step "
                    "10 of 100: 10 generation batches in a row kept no group)")


def test_sft_guard_line(tmp_path):
    (tmp_path / "sft").mkdir()
    counts = {"time_budget": {"stopped_by_budget": True, "budget_s": 600.0, "stopped_at_step": 527, "max_steps": 1722}}
    (tmp_path / "sft" / "manifest.json").write_text(json.dumps({"counts": counts}))
    assert "stopped training at step 527 of 1722" in training_cut_short(tmp_path)
    counts["time_budget"]["stopped_by_budget"] = False
    (tmp_path / "sft" / "manifest.json").write_text(json.dumps({"counts": counts}))
    assert training_cut_short(tmp_path) == ""


def test_sft_precision_line(tmp_path):
    cfg = OmegaConf.create({"sft": {"bf16": "auto"}})
    assert sft_precision_line(cfg, tmp_path) == ""
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "manifest.json").write_text(json.dumps({"counts": {"steps": 3876, "precision": "fp32"}}))
    assert sft_precision_line(cfg, tmp_path) == ("sft: 3876 steps in fp32 (sft.bf16=auto: bf16 only where this host "
                                                 "computes it natively)")
    assert sft_precision_line(OmegaConf.create({"sft": {"bf16": False}}), tmp_path) == (
        "sft: 3876 steps in fp32 (sft.bf16=False, as configured)")
