"""SASRec baseline from RecBole 1.2.1 on exactly our leave-one-out split. Runs in `.venv-recbole/`.

Set up the environment with `bash bench/baselines/setup_recbole.sh`, then
  .venv-recbole/bin/python bench/baselines/sasrec_recbole.py --dataset-dir runs/demo_cpu-scientific/data \
      [--epochs 10] [--time-budget-min 30] [--out runs/demo_cpu-scientific/baselines/sasrec_recbole.json]

Protocol:
- Data: `inter.json` → RecBole atomic file `<name>.inter` with `user_id:token item_id:token timestamp:float`, the
  timestamp being the item's position in the user's sequence. RecBole's sequential augmentation (every prefix →
  next item, history truncated to `MAX_ITEM_LIST_LENGTH`) followed by `eval_args {split: {LS: valid_and_test},
  order: TO, group_by: user, mode: full}` then yields our train/valid/test examples; the script verifies this for
  every example of every split (user, history, target) before training and stops on any difference.
- `MAX_ITEM_LIST_LENGTH` defaults to 20 = our `data.max_history`, so SASRec sees the same histories as our models.
- Model: SASRec, CE loss over all items (no negative sampling), hidden 64, 2 layers, 2 heads, inner 256, dropout 0.5
  (RecBole defaults), Adam lr 1e-3, batch 2048 (--hidden/--layers/--dropout/--lr change them;
  bench/baselines/sasrec_grid.py searches a grid); early stopping on valid NDCG@10 (patience `--stopping-step`);
  test metrics from the best-valid checkpoint.
- Evaluation: full ranking over all items. RecBole does NOT mask history items for sequential models (its
  FullSortEvalDataLoader passes no history index when MODEL_TYPE is SEQUENTIAL; only the padding item 0 is set to
  -inf). Recall@{1,5,10}, NDCG@{1,5,10} are RecBole's; the script recomputes them from the best model's top-10
  lists with `gream_pipeline/eval/metrics.py` as a cross-check (`test_gream_metrics`).
- RecBole quirks handled: numpy < 2 (np.float_), TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (best-checkpoint reload),
  torch.autograd.set_detect_anomaly(False) after importing its sequential models (sine.py turns it on globally).

The atomic-file conversion and split comparison below are pure python (no recbole/torch import at module top), so
`tests/test_baselines.py` runs them in the main venv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

KS: tuple[int, ...] = (1, 5, 10)
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
Example = tuple[str, tuple[str, ...], str]  # (user, history, target) as RecBole tokens


# ---------------------------------------------------------------- pure python: conversion and split check

def atomic_inter_lines(inter: Mapping[str, Sequence[int | str]]) -> list[str]:
    """RecBole `.inter` lines (header first): one row per interaction, timestamp = position in the user's sequence."""
    lines = [INTER_HEADER]
    for user, seq in inter.items():
        lines.extend(f"{user}\t{item}\t{pos}" for pos, item in enumerate(seq))
    return lines


def write_atomic_dataset(inter: Mapping[str, Sequence[int | str]], root: Path, name: str) -> Path:
    """Write `<root>/<name>/<name>.inter`; returns the file path."""
    path = Path(root) / name / f"{name}.inter"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".inter.tmp")
    tmp.write_text("\n".join(atomic_inter_lines(inter)) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def our_examples(data_dir: Path) -> dict[str, list[Example]]:
    """train/valid/test examples of a data-stage output dir as (user, history, target) string tuples."""
    out = {}
    for split in ("train", "valid", "test"):
        out[split] = [(str(e["user"]), tuple(str(i) for i in e["history"]), str(e["target"]))
                      for e in read_jsonl(Path(data_dir) / f"{split}.jsonl")]
    return out


def compare_examples(ours: Iterable[Example], theirs: Iterable[Example]) -> dict[str, int]:
    """Multiset comparison: counts of examples, matches and differences on each side (0 missing ⇔ identical)."""
    a, b = Counter(ours), Counter(theirs)
    return {"ours": sum(a.values()), "recbole": sum(b.values()), "matched": sum((a & b).values()),
            "only_ours": sum((a - b).values()), "only_recbole": sum((b - a).values())}


def compare_targets(ours: Iterable[Example], theirs: Iterable[Example]) -> dict[str, int]:
    """Per-user target comparison for one-example-per-user splits (valid, test)."""
    a = {u: t for u, _, t in ours}
    b = {u: t for u, _, t in theirs}
    return {"users_ours": len(a), "users_recbole": len(b),
            "same_target": sum(1 for u, t in a.items() if b.get(u) == t),
            "missing_or_different": sum(1 for u, t in a.items() if b.get(u) != t)}


# ---------------------------------------------------------------- RecBole glue (imports inside functions)

def _import_recbole():
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    from recbole.model.sequential_recommender import SASRec  # noqa: F401  (this import enables anomaly detection)
    torch.autograd.set_detect_anomaly(False)
    return torch


def recbole_examples(dataset) -> list[Example]:
    """(user, history, target) tokens of a RecBole sequential split dataset (after augmentation)."""
    feat = dataset.inter_feat
    uid, iid = dataset.uid_field, dataset.iid_field
    list_field = iid + dataset.config["LIST_SUFFIX"]
    u_tok = dataset.field2id_token[uid]
    i_tok = dataset.field2id_token[iid]
    users = u_tok[feat[uid].numpy()]
    targets = i_tok[feat[iid].numpy()]
    hists = i_tok[feat[list_field].numpy()]
    lengths = feat[dataset.item_list_length_field].numpy()
    return [(str(u), tuple(str(x) for x in h[:n]), str(t)) for u, h, n, t in zip(users, hists, lengths, targets)]


def verify_split(ours: Mapping[str, list[Example]], loaders: Mapping[str, object]) -> dict:
    """Compare RecBole's three splits to ours; raises if any example differs."""
    report = {}
    for split, loader in loaders.items():
        theirs = recbole_examples(loader._dataset)
        report[split] = compare_examples(ours[split], theirs)
        if split != "train":
            report[split]["targets"] = compare_targets(ours[split], theirs)
    bad = {s: r for s, r in report.items() if r["only_ours"] or r["only_recbole"]}
    if bad:
        raise SystemExit(f"RecBole split differs from ours: {json.dumps(bad)}")
    return report


def make_config(args: argparse.Namespace, data_root: Path, name: str, work: Path) -> dict:
    return {
        "data_path": str(data_root), "checkpoint_dir": str(work / "saved"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "train_neg_sample_args": None, "loss_type": "CE",
        "hidden_size": args.hidden, "inner_size": 4 * args.hidden, "n_layers": args.layers, "n_heads": 2,
        "hidden_dropout_prob": args.dropout, "attn_dropout_prob": args.dropout,
        "learning_rate": args.lr, "train_batch_size": args.batch_size, "eval_batch_size": 4096,
        "epochs": args.epochs, "stopping_step": args.stopping_step, "eval_step": 1,
        "metrics": ["Recall", "NDCG"], "topk": list(KS), "valid_metric": "NDCG@10", "metric_decimal_place": 6,
        "use_gpu": False, "seed": args.seed, "reproducibility": True, "show_progress": False,
        "log_wandb": False, "save_dataset": False, "save_dataloaders": False, "state": "INFO",
    }


class BudgetExceeded(Exception):
    """Raised from the validation callback when the time budget is spent (the best checkpoint is already saved)."""


def make_trainer_class(base):
    class TimedTrainer(base):
        """RecBole Trainer that records per-epoch train/valid times and valid results."""

        epoch_log: list[dict]
        epoch_log_path: Path | None = None

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            t = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
            self.epoch_log.append({"epoch": epoch_idx, "train_s": round(time.perf_counter() - t, 2),
                                   "loss": float(sum(loss) if isinstance(loss, tuple) else loss)})
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            t = time.perf_counter()
            score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
            self.epoch_log[-1].update(valid_s=round(time.perf_counter() - t, 2),
                                      valid={k: round(float(v), 6) for k, v in result.items()})
            if self.epoch_log_path is not None:  # kept for a resumed run
                tmp = self.epoch_log_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.epoch_log))
                os.replace(tmp, self.epoch_log_path)
            return score, result

    return TimedTrainer


def resume(trainer, work: Path, enabled: bool) -> int | None:
    """Continue an interrupted run from its best checkpoint (RecBole saves one whenever validation improves: model,
    optimizer, epoch and early-stopping counter; the random state is not saved). Epochs after that checkpoint are
    trained again; the epoch log of the earlier attempt is kept up to it. Returns the epoch resumed from, or None."""
    saved = sorted((work / "saved").glob("SASRec-*.pth"), key=lambda p: p.stat().st_mtime)
    if not enabled or not saved:
        return None
    trainer.resume_checkpoint(saved[-1])
    start = int(trainer.start_epoch)
    if trainer.epoch_log_path.is_file():
        trainer.epoch_log = [e for e in json.loads(trainer.epoch_log_path.read_text()) if e["epoch"] < start]
    print(f"resumed from {saved[-1]} at epoch {start}", file=sys.stderr)
    return start


def gream_metrics_on(trainer, loader, torch, first_users: Sequence[str] | None = None
                     ) -> tuple[dict[str, float], dict | None]:
    """Recompute test metrics from the loaded model's top-10 with gream_pipeline/eval/metrics.py; with
    ``first_users`` (user tokens of the first N rows of our test.jsonl) also the metrics on those users only."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from most_popular import load_metrics
    metrics = load_metrics()
    dataset = loader._dataset
    i_tok = dataset.field2id_token[dataset.iid_field]
    u_tok = dataset.field2id_token[dataset.uid_field]
    trainer.model.eval()
    rankings, targets, users = [], [], []
    with torch.no_grad():
        for batch in loader:
            interaction, scores, _, pos_i = trainer._full_sort_batch_eval(batch)
            top = torch.topk(scores, max(KS), dim=1).indices.numpy()
            rankings.extend([[str(x) for x in i_tok[row]] for row in top])
            targets.extend(str(x) for x in i_tok[pos_i.numpy()])
            users.extend(str(x) for x in u_tok[interaction[dataset.uid_field].numpy()])
    full = {k: round(v, 6) for k, v in metrics.ranking_metrics(rankings, targets, KS).items()}
    if not first_users:
        return full, None
    row = {u: i for i, u in enumerate(users)}
    missing = [u for u in first_users if u not in row]
    if missing:
        raise RuntimeError(f"{len(missing)} of our first test users are not in RecBole's test loader: {missing[:5]}")
    sub = metrics.ranking_metrics([rankings[row[u]] for u in first_users], [targets[row[u]] for u in first_users], KS)
    return full, {"n": len(first_users), **{k: round(v, 6) for k, v in sub.items()}}


def run(args: argparse.Namespace) -> dict:
    t_start = time.perf_counter()
    torch = _import_recbole()
    torch.set_num_threads(args.threads)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    data_dir = args.dataset_dir.resolve()
    out = args.out.resolve()
    work = out.parent / f"{out.stem}_work"
    name = args.name or data_dir.parent.name.replace("-", "_")
    inter_text = (data_dir / "inter.json").read_text()
    inter = json.loads(inter_text)
    write_atomic_dataset(inter, work / "atomic", name)
    os.chdir(work)  # RecBole writes ./log and ./log_tensorboard relative to the working directory

    config = Config(model="SASRec", dataset=name, config_dict=make_config(args, work / "atomic", name, work))
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(args.threads)
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    split_report = verify_split(our_examples(data_dir),
                                {"train": train_data, "valid": valid_data, "test": test_data})
    t_setup = time.perf_counter() - t_start
    print(f"split verified: {json.dumps(split_report)}", file=sys.stderr)

    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = make_trainer_class(Trainer)(config, model)
    trainer.epoch_log, trainer.epoch_log_path = [], work / "epoch_log.json"
    resumed_from = resume(trainer, work, args.resume and not out.exists())  # a finished run's result is final
    if torch.is_anomaly_enabled():
        raise RuntimeError("autograd anomaly detection is on (RecBole's sine.py): training would be ~1.75x slower")
    deadline = t_start + 60 * args.time_budget_min if args.time_budget_min else None

    def budget(epoch_idx, valid_score):
        if deadline and time.perf_counter() > deadline:
            raise BudgetExceeded(epoch_idx)

    stopped_by = "epochs"
    t_fit = time.perf_counter()
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=budget)
        if trainer.epoch_log[-1]["epoch"] + 1 < args.epochs:
            stopped_by = "early_stopping"
    except BudgetExceeded:
        stopped_by = "time_budget"
    fit_s = time.perf_counter() - t_fit
    best_valid = trainer.best_valid_result
    test_result = trainer.evaluate(test_data, load_best_model=True, model_file=trainer.saved_model_file,
                                   show_progress=False)
    first_users = [str(ex["user"]) for ex in read_jsonl(data_dir / "test.jsonl")[:args.first_n_test]] \
        if args.first_n_test else None
    cross, first_n = gream_metrics_on(trainer, test_data, torch, first_users)
    train_times = [e["train_s"] for e in trainer.epoch_log]
    best_epoch = max(trainer.epoch_log, key=lambda e: e.get("valid", {}).get("ndcg@10", -1.0))["epoch"]
    return {
        "baseline": "sasrec_recbole",
        "dataset_dir": str(data_dir),
        "inter_sha256": hashlib.sha256(inter_text.encode()).hexdigest(),
        "versions": _versions(torch),
        "protocol": {
            "split": "RecBole LS valid_and_test, order TO, timestamp = position; verified identical to ours",
            "max_item_list_length": args.max_len, "loss": "CE (full softmax, no negative sampling)",
            "ranking": "full over all items; history items NOT masked (RecBole sequential full-sort)",
            "early_stopping": f"valid NDCG@10, patience {args.stopping_step}",
        },
        "hparams": {k: config[k] for k in ("hidden_size", "inner_size", "n_layers", "n_heads", "hidden_dropout_prob",
                                           "attn_dropout_prob", "learning_rate", "train_batch_size", "seed")},
        "split_check": split_report,
        "n_items": int(dataset.item_num - 1), "n_users": int(dataset.user_num - 1),
        "valid": {k: round(float(v), 6) for k, v in (best_valid or {}).items()},
        "test": {k: round(float(v), 6) for k, v in test_result.items()},
        "test_gream_metrics": cross,
        **({"test_first_n": first_n} if first_n else {}),
        "best_epoch": best_epoch, "epochs_run": len(trainer.epoch_log), "stopped_by": stopped_by,
        "resumed_from_epoch": resumed_from,
        "epoch_log": trainer.epoch_log,
        "mean_train_epoch_s": round(sum(train_times) / max(len(train_times), 1), 2),
        "setup_s": round(t_setup, 2), "fit_s": round(fit_s, 2),
        "wall_time_s": round(time.perf_counter() - t_start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
    }


def _versions(torch) -> dict[str, str]:
    import numpy
    import recbole
    return {"recbole": recbole.__version__, "torch": torch.__version__, "numpy": numpy.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="SASRec (RecBole) on a gream data-stage split")
    ap.add_argument("--dataset-dir", type=Path, required=True, help="runs/<run>/data (data-stage output)")
    ap.add_argument("--out", type=Path, help="result JSON (default: <dataset-dir>/../baselines/sasrec_recbole.json)")
    ap.add_argument("--name", help="RecBole dataset name (default: from the run dir)")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--time-budget-min", type=float, default=0.0, help="stop after the epoch that exceeds it (0: none)")
    ap.add_argument("--stopping-step", type=int, default=10, help="early-stopping patience in epochs")
    ap.add_argument("--max-len", type=int, default=20, help="MAX_ITEM_LIST_LENGTH (our data.max_history is 20)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.5, help="hidden and attention dropout (RecBole default 0.5)")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--first-n-test", type=int, help="also report the first N test users (gream's eval.max_users)")
    ap.add_argument("--no-resume", dest="resume", action="store_false",
                    help="start from scratch even when an interrupted run's checkpoint is in the work folder")
    args = ap.parse_args(argv)
    args.out = args.out or args.dataset_dir.resolve().parent / "baselines" / "sasrec_recbole.json"
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps({k: res[k] for k in ("valid", "test", "test_gream_metrics", "epochs_run", "best_epoch",
                                          "mean_train_epoch_s", "wall_time_s", "peak_rss_mb")}, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
