"""Most-popular baseline on the data stage's leave-one-out split. Pure python + json, main venv.

Protocol (mirrors the RecBole SASRec baseline in `sasrec_recbole.py`):
- Popularity = number of interactions of each item in the *training part* of every user's sequence, i.e. the
  sequence minus its last two items (validation and test targets). Ties are broken by item id (ascending).
  `test` uses these train-only counts (the same information SASRec is trained on); `test_train_valid_counts`
  additionally counts each user's validation item (what the LC-Rec convention allows at test time).
- Full ranking over every item of the catalogue (items of `inter.json` ∪ `items.json`), no negative sampling.
- Nothing is excluded: history items stay rankable, as in RecBole's full-sort evaluation of sequential models
  (it masks only its padding item 0). `--exclude-history` reports the masked variant for reference.
- Recall@K / NDCG@K with one relevant item per user, computed by `gream_pipeline/eval/metrics.py`
  (loaded by file path, so the eval package's heavy `__init__` is not imported).

Usage: .venv/bin/python bench/baselines/most_popular.py --dataset-dir runs/demo_cpu-scientific/data [--out F]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
KS: tuple[int, ...] = (1, 5, 10)


def load_metrics() -> ModuleType:
    """The project's pure metric module (`gream_pipeline/eval/metrics.py`), imported by path."""
    path = REPO / "gream_pipeline" / "eval" / "metrics.py"
    spec = importlib.util.spec_from_file_location("gream_eval_metrics", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_split(data_dir: Path) -> dict:
    """inter.json, the item universe and the valid/test examples of a data-stage output dir."""
    data_dir = Path(data_dir)
    inter = {u: [int(i) for i in s] for u, s in json.loads((data_dir / "inter.json").read_text()).items()}
    items = {i for s in inter.values() for i in s}
    if (data_dir / "items.json").is_file():
        items |= {int(i) for i in json.loads((data_dir / "items.json").read_text())}
    return {"inter": inter, "items": sorted(items),
            "valid": read_jsonl(data_dir / "valid.jsonl"), "test": read_jsonl(data_dir / "test.jsonl")}


def check_split(inter: Mapping[str, Sequence[int]], valid: Iterable[dict], test: Iterable[dict]) -> None:
    """The split must be leave-one-out of `inter`: test target = last item, valid target = second last."""
    for ex in test:
        if inter[ex["user"]][-1] != ex["target"]:
            raise ValueError(f"test target of user {ex['user']} is not the last item of its sequence")
    for ex in valid:
        if inter[ex["user"]][-2] != ex["target"]:
            raise ValueError(f"valid target of user {ex['user']} is not the second-last item of its sequence")


def popularity(inter: Mapping[str, Sequence[int]], holdout: int = 2) -> Counter:
    """Interaction counts over each sequence minus its last `holdout` items."""
    counts: Counter = Counter()
    for seq in inter.values():
        counts.update(seq[: max(len(seq) - holdout, 0)])
    return counts


def rank_items(counts: Mapping[int, int], items: Iterable[int]) -> list[int]:
    """All `items` by decreasing count, ties by increasing item id."""
    return sorted(items, key=lambda i: (-counts.get(i, 0), i))


def top_k_lists(order: Sequence[int], examples: Sequence[dict], k: int, exclude_history: bool) -> list[list[str]]:
    """Per-example top-k item ids (as strings) from one global `order`, optionally skipping history items."""
    if not exclude_history:
        head = [str(i) for i in order[:k]]
        return [head for _ in examples]
    out = []
    for ex in examples:
        hist = set(ex["history"])
        out.append([str(i) for i in _take(order, hist, k)])
    return out


def _take(order: Sequence[int], skip: set[int], k: int) -> list[int]:
    res: list[int] = []
    for i in order:
        if i not in skip:
            res.append(i)
            if len(res) == k:
                break
    return res


def evaluate(order: Sequence[int], examples: Sequence[dict], metrics: ModuleType, ks: Sequence[int] = KS,
             exclude_history: bool = False) -> dict[str, float]:
    """Recall@K / NDCG@K of a global ranking `order` on `examples` (`{"history", "target"}` dicts)."""
    lists = top_k_lists(order, examples, max(ks), exclude_history)
    res = metrics.ranking_metrics(lists, [str(ex["target"]) for ex in examples], ks)
    return {k: round(v, 6) for k, v in res.items()}


def run(data_dir: Path, exclude_history: bool = False, ks: Sequence[int] = KS, first_n_test: int | None = None
        ) -> dict:
    """All most-popular results for one data-stage output dir; ``first_n_test`` adds ``test_first_n``: the
    metrics on the first N rows of ``test.jsonl`` (the users gream's ``eval.max_users`` evaluates)."""
    t0 = time.perf_counter()
    metrics = load_metrics()
    d = load_split(data_dir)
    check_split(d["inter"], d["valid"], d["test"])
    train_order = rank_items(popularity(d["inter"], holdout=2), d["items"])
    tv_order = rank_items(popularity(d["inter"], holdout=1), d["items"])
    res = {
        "baseline": "most_popular",
        "dataset_dir": str(data_dir),
        "protocol": {
            "counts": "items of each user's sequence minus its last two (train part); ties by item id",
            "ranking": "full, over all items; no negative sampling",
            "exclude_history": exclude_history,
            "metrics": "gream_pipeline/eval/metrics.py ranking_metrics (one relevant item per user)",
        },
        "n_users": len(d["inter"]), "n_items": len(d["items"]),
        "n_valid": len(d["valid"]), "n_test": len(d["test"]),
        "valid": evaluate(train_order, d["valid"], metrics, ks, exclude_history),
        "test": evaluate(train_order, d["test"], metrics, ks, exclude_history),
        "test_train_valid_counts": evaluate(tv_order, d["test"], metrics, ks, exclude_history),
        "top10_train_counts": train_order[:10],
    }
    if first_n_test:
        res["test_first_n"] = {"n": len(d["test"][:first_n_test]),
                               **evaluate(train_order, d["test"][:first_n_test], metrics, ks, exclude_history)}
    res["wall_time_s"] = round(time.perf_counter() - t0, 3)
    return res


def write_json_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset-dir", type=Path, required=True, help="runs/<run>/data (data-stage output)")
    ap.add_argument("--out", type=Path, help="result JSON (default: <dataset-dir>/../baselines/most_popular.json)")
    ap.add_argument("--exclude-history", action="store_true", help="mask each user's history items (not default)")
    ap.add_argument("--first-n-test", type=int, help="also report the first N test users (gream's eval.max_users)")
    args = ap.parse_args(argv)
    out = args.out or args.dataset_dir.resolve().parent / "baselines" / (
        "most_popular" + ("_exclude_history" if args.exclude_history else "") + ".json")
    res = run(args.dataset_dir, exclude_history=args.exclude_history, first_n_test=args.first_n_test)
    write_json_atomic(res, out)
    print(json.dumps({k: res[k] for k in ("valid", "test", "test_train_valid_counts", "wall_time_s")}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
