"""bench/reasoning_rl.py: per-run reasoning metrics with intervals, training totals, other results.json keys kept."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import reasoning_rl  # noqa: E402


def _predictions(path: Path, correct: list[int]) -> None:
    """One record per user, 10 samples each; the ranked answers hold the target iff some sample was correct."""
    path.mkdir(parents=True, exist_ok=True)
    rows = [{"user": str(u), "target_id": "<a_1>", "reason": {"n": 10, "correct": c,
                                                                "ranked": ["<a_1>"] if c else ["<a_2>"]}}
            for u, c in enumerate(correct)]
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "metrics.json").write_text(json.dumps({"reason": {"natural_close_rate": 0.5}}))


def test_block_and_merge(tmp_path, monkeypatch):
    rl = tmp_path / "run" / "rl"
    _predictions(rl / "valid_before" / "reason", [10, 0, 0, 0])
    _predictions(rl / "valid_after" / "reason", [10, 5, 0, 0])
    (rl / "rl_summary.json").write_text(json.dumps({
        "srpo": {"steps": 20, "groups": 80, "kept_groups": 20, "exact_rate": 0.01},
        "paired": {"reason": {"users": 4, "srpo-before": {"pass@1": {"diff": 0.125}}}}}))
    out = reasoning_rl.block(tmp_path / "run")
    assert out["users"] == 4 and "grpo" not in out
    assert out["before"]["pass@1"][1] == 0.25 and out["srpo"]["pass@1"][1] == 0.375  # (1 + 0.5) / 4
    assert out["before"]["pass@10"][1] == 0.25 and out["srpo"]["pass@10"][1] == 0.5
    assert out["srpo"]["rank_recall@10"][1] == 0.5
    lo, mean, hi = out["srpo"]["pass@1"]
    assert 0.0 <= lo <= mean <= hi <= 1.0
    assert out["srpo"]["training"]["kept_group_frac"] == 0.25 and out["srpo"]["natural_close_rate"] == 0.5
    assert out["paired"]["srpo-before"]["pass@1"]["diff"] == 0.125

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"datasets": {"scientific": {"users": 1}}, "reasoning_rl": {"instruments": {}}}))
    monkeypatch.setattr(sys, "argv", ["reasoning_rl.py", str(tmp_path / "run"), "--dataset", "scientific",
                                      "--json", str(results)])
    reasoning_rl.main()
    merged = json.loads(results.read_text())
    assert merged["datasets"] == {"scientific": {"users": 1}}
    assert set(merged["reasoning_rl"]) == {"instruments", "scientific"}
