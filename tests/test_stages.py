"""The stage runner: DAG from declarations, hashing of declared config and inputs only, atomic output with the
failed attempt kept aside, stale temporary folders, and the two couplings it fixes (enriched texts, RL vs eval)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from gream_pipeline.errors import GreamError
from gream_pipeline.stages import Input, Stage, StageContext, run_stage, stage_config, topological_order
from tests.conftest import run_gream, subset_lcrec


def _noop(ctx):
    return {}


def test_order_follows_consumes_and_cycles_are_rejected():
    a = Stage("a", config=(), run=_noop)
    b = Stage("b", config=(), run=_noop, consumes=(Input("c", "x"),))
    c = Stage("c", config=(), run=_noop, consumes=(Input("a", "x"),))
    assert topological_order({"b": b, "c": c, "a": a}) == ["a", "c", "b"]
    cyclic = Stage("a", config=(), run=_noop, consumes=(Input("b", "x"),))
    with pytest.raises(GreamError, match="cycle: .*a.*b.*c.*a|cycle: .*b.*c.*a.*b"):
        topological_order({"a": cyclic, "b": b, "c": c})
    with pytest.raises(GreamError, match="unknown stage"):
        topological_order({"b": b})


def test_registered_pipeline_order():
    from gream_pipeline import pipeline  # noqa: F401
    from gream_pipeline.stages import ORDER, STAGES

    assert ORDER.index("enrich") < ORDER.index("index") < ORDER.index("synth") < ORDER.index("sft") \
        < ORDER.index("rl") < ORDER.index("eval")
    assert "synth" not in STAGES["index"].upstream and "eval" not in STAGES["rl"].upstream


def _toy(tmp_path, run, config=("toy",), produces=("out.json",), consumes=()):
    stages = {"toy": Stage("toy", config=config, run=run, produces=produces, consumes=consumes)}
    cfg = OmegaConf.create({"run_dir": str(tmp_path / "run"), "run_name": "r", "force": False,
                            "toy": {"k": 1}, "other": {"k": 1}})
    return stages, cfg


def _writer(value):
    def run(ctx: StageContext) -> dict:
        ctx.write_json("out.json", {"value": value, "k": ctx.cfg.toy.k})
        return {"value": value}
    return run


def test_only_declared_config_is_hashed(tmp_path, monkeypatch):
    from gream_pipeline import stages as mod

    stages, cfg = _toy(tmp_path, _writer(1))
    monkeypatch.setattr(mod, "STAGES", stages)
    first = run_stage(cfg, "toy")
    cfg.other.k = 2  # not declared: still up to date
    assert run_stage(cfg, "toy")["timings"] == first["timings"]
    cfg.toy.k = 2  # declared: re-runs
    again = run_stage(cfg, "toy")
    assert again["config_hash"] != first["config_hash"]
    assert json.loads((tmp_path / "run" / "toy" / "out.json").read_text())["k"] == 2


def test_failed_stage_keeps_previous_output_and_its_evidence(tmp_path, monkeypatch):
    from gream_pipeline import stages as mod

    stages, cfg = _toy(tmp_path, _writer(1))
    monkeypatch.setattr(mod, "STAGES", stages)
    run_stage(cfg, "toy")

    def failing(ctx):
        ctx.output("framework.log").write_text("what went wrong\n")
        raise GreamError("training failed")

    monkeypatch.setitem(stages, "toy", Stage("toy", config=("toy",), run=failing))
    cfg.force = True
    with pytest.raises(GreamError, match=r"training failed \[stage toy failed; its logs and partial output: .*toy\.failed"):
        run_stage(cfg, "toy")
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "toy" / "out.json").read_text())["value"] == 1
    assert (run_dir / "toy.failed" / "framework.log").read_text() == "what went wrong\n"
    assert sorted(p.name for p in run_dir.iterdir()) == ["toy", "toy.failed"]  # no temporary folder left
    monkeypatch.setitem(stages, "toy", Stage("toy", config=("toy",), run=_writer(2), produces=("out.json",)))
    run_stage(cfg, "toy")
    assert not (run_dir / "toy.failed").exists()  # a success clears the evidence of the last failure


def test_undeclared_reads_and_missing_products_are_errors(tmp_path, monkeypatch):
    from gream_pipeline import stages as mod

    def sneaky(ctx):
        return ctx.read_json("data", "items.json")

    stages, cfg = _toy(tmp_path, sneaky)
    monkeypatch.setattr(mod, "STAGES", stages)
    with pytest.raises(RuntimeError, match="did not declare input data/items.json"):
        run_stage(cfg, "toy")
    stages["toy"] = Stage("toy", config=(), run=_noop, produces=("out.json",))
    with pytest.raises(GreamError, match=r"without writing \['out.json'\]"):
        run_stage(cfg, "toy")
    stages["toy"] = Stage("toy", config=(), run=_noop, consumes=(Input("data", "items.json"),))
    with pytest.raises(GreamError, match="stage 'data' has not completed.*make data"):
        run_stage(cfg, "toy")
    assert not (tmp_path / "run" / "toy").exists()


def test_stale_temp_folders_of_dead_processes_are_removed(tmp_path, monkeypatch):
    from gream_pipeline import stages as mod

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    run_dir = tmp_path / "run"
    (run_dir / f".sft.tmp-{dead_pid}-abc").mkdir(parents=True)
    (run_dir / f".sft.tmp-{dead_pid}-abc" / "partial.bin").write_bytes(b"x")
    (run_dir / f".index.old-{dead_pid}-").mkdir()
    live = run_dir / f".rl.tmp-{os.getppid()}-xyz"  # a live process's (the test runner's parent)
    live.mkdir()
    stages, cfg = _toy(tmp_path, _writer(1))
    monkeypatch.setattr(mod, "STAGES", stages)
    run_stage(cfg, "toy")
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(["toy", live.name])


def _compose(*overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gream_pipeline.cli import RECIPES, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        return compose(config_name="config", overrides=["stage=rl", *overrides])


def test_eval_settings_do_not_invalidate_rl():
    from gream_pipeline.artifacts import sha256_json
    from gream_pipeline.rl.stage import RL

    base = sha256_json(stage_config(_compose(), RL))
    for override in ("eval.num_beams=5", "eval.temperature=0.2", "eval.max_users=7", "eval.engine.kind=openai",
                     "eval.max_new_tokens=64", "eval.think_budget=9"):
        assert sha256_json(stage_config(_compose(override), RL)) == base, override
    assert sha256_json(stage_config(_compose("rl.validate.num_beams=5"), RL)) != base


def test_rl_validation_uses_rl_decode_settings():
    from gream_pipeline.rl.stage import validation_config

    cfg = _compose("eval.num_beams=3", "rl.validate.num_beams=7", "rl.validate.reason_users=4",
                   "rl.validate.users=9")
    direct, reason = validation_config(cfg, "direct"), validation_config(cfg, "reason")
    assert direct.num_beams == 7 and direct.max_users == 9 and direct.split == "valid" and not direct.plots
    assert reason.max_users == 4 and reason.modes == ["reason"]


def test_enriched_texts_reach_the_index(scientific, tmp_path):
    """data → enrich (offline synthesizer) → index with the sentence embedder embeds the rewritten texts."""
    folder = subset_lcrec(scientific, "Scientific", tmp_path / "Sci", num_users=40)
    common = ["dataset=lcrec", f"dataset.path={folder}", "index.codebook_size=8", "index.embedder=sentence",
              "index.text_source=enriched"]
    runs = tmp_path / "runs"
    run_gream("stage=data", *common, runs_dir=runs)
    missing = run_gream("stage=index", *common, runs_dir=runs, check=False)
    assert missing.returncode == 2 and "stage 'enrich' has not completed" in missing.stdout + missing.stderr
    run_gream("stage=enrich", *common, runs_dir=runs)
    run_gream("stage=index", *common, runs_dir=runs)
    run_dir = runs / "demo_cpu-Sci"
    enriched = json.loads((run_dir / "enrich" / "enriched_items.json").read_text())
    texts = json.loads((run_dir / "index" / "texts.json").read_text())
    assert enriched and all(enriched[k] in texts[int(k)] for k in enriched)
    from gream_pipeline.index.text import fuse_item_text

    original = json.loads((run_dir / "data" / "items.json").read_text())
    cfg = _compose()
    fields = list(cfg.index.text_fields)
    plain = {k: fuse_item_text(original[k], fields, [], int(cfg.index.max_chars), None) for k in enriched}
    assert sum(plain[k] != texts[int(k)] for k in enriched) == len(enriched)  # every rewritten text was used
    manifest = json.loads((run_dir / "index" / "manifest.json").read_text())
    assert any(p.endswith("enrich/enriched_items.json") for p in manifest["inputs"])
    report = json.loads((run_dir / "index" / "report.json").read_text())
    assert report["text_source"] == "enriched"


def test_enriched_texts_with_a_text_free_embedder_is_a_clear_error(scientific, tmp_path):
    folder = subset_lcrec(scientific, "Scientific", tmp_path / "Sci", num_users=30)
    common = ["dataset=lcrec", f"dataset.path={folder}", "index.codebook_size=8"]
    runs = tmp_path / "runs"
    run_gream("stage=data", *common, runs_dir=runs)
    run_gream("stage=enrich", *common, "index.text_source=enriched", runs_dir=runs)
    proc = run_gream("stage=index", *common, "index.text_source=enriched", "index.embedder=collaborative",
                     runs_dir=runs, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out
    assert "index.text_source=enriched needs a text embedder" in out and "collaborative" in out
    assert not (runs / "demo_cpu-Sci" / "index").exists()
