"""``reasoning_rl`` block of bench/results.json from a finished ``rl.mode=reason rl.compare_grpo=true`` run
(bench/reason_mode.sh with RL_STEPS > 0): per validation run (before, SRPO, GRPO) each reasoning metric as
``[low, mean, high]`` (percentile bootstrap over users), the paired differences the rl stage computed, and the
training totals (kept-group fraction, exact-hit rate, reward first/last fifth of the steps).

    .venv/bin/python bench/reasoning_rl.py runs/<run> --dataset scientific [--json bench/results.json]

Other top-level keys of the JSON file (``datasets``, …) and other datasets' blocks are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gream_pipeline.artifacts import read_jsonl  # noqa: E402
from gream_pipeline.eval.metrics import paired_bootstrap  # noqa: E402
from gream_pipeline.rl.stage import VALIDATION_RUNS, per_user_scores  # noqa: E402


def interval(scores: list[float], seed: int) -> list[float]:
    """[low, mean, high] of the mean of per-user scores (bootstrap against an all-zero twin)."""
    b = paired_bootstrap(scores, [0.0] * len(scores), seed=seed)
    return [round(b["lo"], 5), round(b["diff"], 5), round(b["hi"], 5)]


TRAINING_KEYS = ("steps", "groups", "kept_groups", "exact_rate", "reward_first", "reward_last", "sec_per_step")


def training(summary: dict) -> dict:
    """Totals of one SRPO/GRPO training run (the per-step curves are its log and plot)."""
    out = {key: summary.get(key) for key in TRAINING_KEYS}
    out["kept_group_frac"] = round(summary["kept_groups"] / summary["groups"], 4) if summary.get("groups") else None
    return out


def block(run: Path, seed: int = 0) -> dict:
    rl = run / "rl"
    summary = json.loads((rl / "rl_summary.json").read_text())
    ks = (1, 5, 10)
    out: dict = {}
    for label, folder in VALIDATION_RUNS:
        path = rl / folder / "reason" / "predictions.jsonl"
        if path.is_file():
            scores = per_user_scores(read_jsonl(path), "reason", ks)
            out["users"] = len(next(iter(scores.values())))
            out[label] = {metric: interval(values, seed) for metric, values in scores.items()}
            metrics = rl / folder / "reason" / "metrics.json"
            if metrics.is_file():
                out[label]["natural_close_rate"] = json.loads(metrics.read_text())["reason"]["natural_close_rate"]
    out["paired"] = summary.get("paired", {}).get("reason", {})
    for label, train in (("srpo", summary.get("srpo", {})), ("grpo", summary.get("grpo", {}))):
        if label in out:
            out[label]["training"] = training(train)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results.json")
    args = parser.parse_args()
    result = json.loads(args.json.read_text()) if args.json.is_file() else {}
    result.setdefault("reasoning_rl", {})[args.dataset] = {"run": str(args.run), **block(args.run)}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["reasoning_rl"][args.dataset], indent=1))


if __name__ == "__main__":
    main()
