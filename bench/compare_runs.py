"""Paired comparison of two gream runs' direct-mode predictions on the same users (a validation A/B).

    .venv/bin/python bench/compare_runs.py runs/A runs/B [--split valid] [--k 10] [--out F]

Prints and writes, per run, Recall@K / NDCG@K with a 95 % Wilson interval of Recall@K, and the paired bootstrap
interval of Recall@K(B) − Recall@K(A) over the users both runs scored.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from gream_pipeline.artifacts import read_jsonl
from gream_pipeline.eval.metrics import paired_bootstrap, wilson_interval


def per_user(run: Path, split: str, k: int) -> dict[str, tuple[float, float]]:
    """user → (hit@k, ndcg@k) from a run's direct-mode predictions."""
    out = {}
    for rec in read_jsonl(run / "eval" / split / "direct" / "predictions.jsonl"):
        ids = [h["id"] for h in rec["direct"][:k]]
        rank = ids.index(rec["target_id"]) if rec["target_id"] in ids else None
        out[rec["user"]] = (0.0, 0.0) if rank is None else (1.0, 1.0 / math.log2(rank + 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    a, b = per_user(args.a, args.split, args.k), per_user(args.b, args.split, args.k)
    users = sorted(set(a) & set(b))
    report = {"split": args.split, "k": args.k, "users": len(users)}
    for name, scores in (("a", a), ("b", b)):
        hits = [scores[u][0] for u in users]
        lo, hi = wilson_interval(int(sum(hits)), len(hits))
        report[name] = {"run": str(getattr(args, name)), f"recall@{args.k}": sum(hits) / len(hits),
                        f"ndcg@{args.k}": sum(scores[u][1] for u in users) / len(users), "ci95": [lo, hi]}
    report["b_minus_a"] = paired_bootstrap([b[u][0] for u in users], [a[u][0] for u in users])
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
