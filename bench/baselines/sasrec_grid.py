"""Small SASRec hyper-parameter grid, one configuration at a time, resumable: the best one by validation NDCG@10.

  python bench/baselines/sasrec_grid.py --dataset-dir runs/bench_cpu-scientific/data \
      --hidden 64 128 --dropout 0.2 0.5 --lr 1e-3 [--first-n-test N] [--threads 1]

Every configuration is trained by `sasrec_recbole.py` in `.venv-recbole/` (early stopping on validation NDCG@10,
patience `--stopping-step` epochs) into `<out dir>/sasrec_grid/<tag>.json`; a configuration whose file exists is not
trained again, and a configuration interrupted mid-training resumes from its best checkpoint, so an interrupted grid
continues where it stopped. The RecBole defaults (hidden 64, dropout 0.5,
lr 1e-3) run first when they are in the grid. After each configuration, `--out` (default
`<run>/baselines/sasrec_recbole.json`) holds the best result so far (selected on validation only; test metrics are
never looked at for the choice) plus a `grid` block listing every configuration, so the benchmark report can say how
much of the grid ran.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULTS = {"hidden": 64, "dropout": 0.5, "lr": 1e-3}


def tag(point: dict) -> str:
    return f"h{point['hidden']}-d{point['dropout']:g}-lr{point['lr']:g}"


def grid_points(hidden: list[int], dropout: list[float], lr: list[float]) -> list[dict]:
    """All combinations, RecBole's defaults first (when present), then in the order given."""
    points = [{"hidden": h, "dropout": d, "lr": r} for h, d, r in itertools.product(hidden, dropout, lr)]
    return sorted(points, key=lambda p: p != DEFAULTS)


def matches(result: dict, point: dict, data_dir: Path, inter_sha256: str, stopping_step: int) -> bool:
    """A kept result belongs to this grid point: same data (folder and, when recorded, content), hyper-parameters
    and early-stopping patience."""
    hp = result.get("hparams", {})
    return (result.get("dataset_dir") == str(data_dir)
            and result.get("inter_sha256", inter_sha256) == inter_sha256
            and hp.get("hidden_size") == point["hidden"] and hp.get("hidden_dropout_prob") == point["dropout"]
            and hp.get("learning_rate") == point["lr"]
            and result.get("protocol", {}).get("early_stopping", "").endswith(f"patience {stopping_step}"))


def valid_score(result: dict) -> float:
    return float(result.get("valid", {}).get("ndcg@10", -1.0))


def summary_row(point: dict, result: dict | None) -> dict:
    if result is None:
        return {**point, "status": "not run"}
    return {**point, "status": "done", "valid_ndcg@10": valid_score(result),
            "test_recall@10": result["test"].get("recall@10"), "epochs_run": result["epochs_run"],
            "best_epoch": result["best_epoch"], "stopped_by": result["stopped_by"],
            "wall_time_s": result["wall_time_s"]}


def write_best(out: Path, points: list[dict], results: dict[str, dict]) -> dict | None:
    done = {t: r for t, r in results.items() if r is not None}
    if not done:
        return None
    best_tag = max(done, key=lambda t: valid_score(done[t]))
    best = dict(done[best_tag])
    best["grid"] = {"selected": best_tag, "selection": "validation NDCG@10",
                    "complete": len(done) == len(points),
                    "configs": [summary_row(p, results.get(tag(p))) for p in points],
                    "total_wall_time_s": round(sum(r["wall_time_s"] for r in done.values()), 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(best, indent=2) + "\n")
    os.replace(tmp, out)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--dropout", type=float, nargs="+", default=[0.2, 0.5])
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--stopping-step", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--first-n-test", type=int)
    ap.add_argument("--python", default=str(ROOT / ".venv-recbole" / "bin" / "python"))
    args = ap.parse_args(argv)
    data_dir = args.dataset_dir.resolve()
    out = (args.out or data_dir.parent / "baselines" / "sasrec_recbole.json").resolve()
    grid_dir = out.parent / "sasrec_grid"
    points = grid_points(args.hidden, args.dropout, args.lr)
    results: dict[str, dict | None] = {}
    inter_sha256 = hashlib.sha256((data_dir / "inter.json").read_bytes()).hexdigest()
    for point in points:
        path = grid_dir / f"{tag(point)}.json"
        if path.exists() and not matches(json.loads(path.read_text()), point, data_dir, inter_sha256,
                                         args.stopping_step):
            print(f"sasrec grid: {path} was trained on other data or settings; training it again", file=sys.stderr)
            path.unlink()
        if not path.exists():
            print(f"sasrec grid: training {tag(point)} ({len(results) + 1}/{len(points)})", file=sys.stderr, flush=True)
            cmd = [args.python, str(HERE / "sasrec_recbole.py"), "--dataset-dir", str(data_dir), "--out", str(path),
                   "--hidden", str(point["hidden"]), "--dropout", str(point["dropout"]), "--lr", str(point["lr"]),
                   "--epochs", str(args.epochs), "--stopping-step", str(args.stopping_step),
                   "--threads", str(args.threads)]
            if args.first_n_test:
                cmd += ["--first-n-test", str(args.first_n_test)]
            subprocess.run(cmd, check=True)
        results[tag(point)] = json.loads(path.read_text())
        best = write_best(out, points, results)
        print(f"sasrec grid: {tag(point)} valid NDCG@10 {valid_score(results[tag(point)]):.4f}; "
              f"best so far {best['grid']['selected']}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
