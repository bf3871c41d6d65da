"""Where direct-mode recall is lost, level by level of the semantic ID.

For each user, whether the target's first L tokens appear as the prefix of any of the top-K predicted IDs, for
L = 1..H code levels (H from the run's index manifest; the conflict slot is not a level), then whether the whole ID
does (Recall@K), plus how many distinct first tokens the top K hold. A large drop from L=1 to L=2 means the model
finds the right coarse cluster but ranks the wrong items inside it.

    .venv/bin/python bench/prefix_hits.py runs/<run> [--split test] [--k 10] [--out F]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gream_pipeline.artifacts import read_jsonl, read_manifest, write_json
from gream_pipeline.eval.metrics import wilson_interval
from gream_pipeline.semantic_ids import parse_tokens


def prefix_hits(records: list[dict], k: int, levels: int) -> dict:
    """Share of users whose target shares an L-token prefix with one of the top-``k`` IDs, for L = 1..``levels``,
    and whose whole ID is among them."""
    hits = [0] * (levels + 1)
    distinct_first = 0
    for rec in records:
        target = parse_tokens(rec["target_id"])
        preds = [parse_tokens(h["id"]) for h in rec["direct"][:k]]
        distinct_first += len({p[0] for p in preds if p})
        for length in range(1, levels + 1):
            if any(p[:length] == target[:length] for p in preds):
                hits[length - 1] += 1
        hits[levels] += target in preds
    n = len(records)
    names = [str(i + 1) for i in range(levels)] + ["full_id"]
    return {"users": n, "k": k,
            "prefix_hit": {name: round(h / n, 4) for name, h in zip(names, hits)},
            "prefix_hit_ci95": {name: [round(x, 4) for x in wilson_interval(h, n)] for name, h in zip(names, hits)},
            "distinct_first_tokens_in_top_k": round(distinct_first / n, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    levels = int(read_manifest(a.run / "index")["counts"]["levels"])
    result = {"run": str(a.run), "split": a.split,
              **prefix_hits(read_jsonl(a.run / "eval" / a.split / "direct" / "predictions.jsonl"), a.k, levels)}
    print(json.dumps(result, indent=2))
    if a.out:
        write_json(a.out, result)


if __name__ == "__main__":
    main()
