"""The ``eval`` stage: evaluate a checkpoint in both inference modes on the test (and validation) split.

Top-level ``metrics.json`` holds the first split's metrics (``direct``, ``reason``, …) and all splits under
``splits``; ``report.md`` puts them beside the paper's Table 2; each split's per-mode predictions, report and plots
are in ``<split>/<mode>/``. Reasoning mode (sampling, costly on CPU) has its own user cap ``eval.reason_max_users``. The checkpoint is ``eval.checkpoint``: ``auto`` (the RL stage's model when that stage completed, else the SFT
stage's), ``sft``, ``rl``, or a path to any local HF model directory whose tokenizer holds the ID tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gream_pipeline.artifacts import read_jsonl, read_manifest, write_json_atomic
from gream_pipeline.errors import GreamError
from gream_pipeline.eval.config import EvalConfig
from gream_pipeline.stages import Stage, require_stage, stage_dir

def checkpoint_dir(cfg: DictConfig) -> Path:
    choice = str(cfg.eval.checkpoint)
    if choice == "auto":
        choice = "rl" if read_manifest(stage_dir(cfg, "rl")) is not None else "sft"
    if choice in ("sft", "rl"):
        return require_stage(cfg, choice) / "model"
    path = Path(choice)
    if not (path / "config.json").is_file():
        raise GreamError(f"eval.checkpoint: {path} is not a model directory (no config.json)")
    return path


def eval_config(cfg: DictConfig, split: str, mode: str) -> EvalConfig:
    """EvalConfig for one split and one mode; reasoning mode uses ``eval.reason_max_users``."""
    values = OmegaConf.to_container(cfg.eval, resolve=True)
    reason_users = values.pop("reason_max_users")
    for key in ("checkpoint", "splits"):
        values.pop(key)
    values.update(split=split, dataset=str(cfg.dataset.name), modes=[mode])
    if mode == "reason":
        values["max_users"] = reason_users
    try:
        return EvalConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise GreamError(f"eval: {err}") from None


def eval_inputs(cfg: DictConfig) -> list[Path]:
    model = checkpoint_dir(cfg)
    data, index = require_stage(cfg, "data"), require_stage(cfg, "index")
    return [model / "config.json", *sorted(model.glob("*.safetensors")), index / "index.json",
            *(data / f"{split}.jsonl" for split in cfg.eval.splits)]


def evaluate_split(cfg: DictConfig, model: Path, index: dict, split: str, out: Path) -> dict:
    """Both modes on one split (each into ``out/<split>/<mode>/``), merged into one metrics dict."""
    from gream_pipeline.eval.runner import evaluate

    examples = read_jsonl(require_stage(cfg, "data") / f"{split}.jsonl")
    merged: dict = {}
    for mode in cfg.eval.modes:
        metrics = evaluate(model, index, examples, out / split / mode, eval_config(cfg, split, mode))
        merged.update({k: v for k, v in metrics.items() if k != "meta"})
        merged[f"{mode}_users"] = metrics["meta"]["n_users"]
        merged[f"{mode}_users_per_s"] = metrics["meta"]["users_per_s"]
    return merged


def write_report(cfg: DictConfig, results: dict, path: Path) -> None:
    """One-page markdown: our metrics per split beside the paper's Table 2 rows for the same dataset."""
    from gream_pipeline.eval.report import paper_rows

    cols = ["recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10", "pass@1", "pass@5", "pass@10"]
    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"# GREAM evaluation — {cfg.dataset.name} ({cfg.run_name})", "",
             f"Checkpoint: `{results['checkpoint']}`", "", "| | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for split, m in results["splits"].items():
        values = {**m.get("direct", {}), **m.get("reason", {})}
        lines.append(f"| ours ({split}, {m.get('direct_users', '–')} / {m.get('reason_users', '–')} users) | "
                     + " | ".join(fmt(values.get(c)) for c in cols) + " |")
    for name, row in (paper_rows(str(cfg.dataset.name)) or {}).items():
        lines.append(f"| paper: {name} | " + " | ".join(fmt(row.get(c)) for c in cols) + " |")
    lines += ["", "Users: direct / reasoning mode. Per-mode predictions, reports and plots: `<split>/<mode>/`."]
    path.write_text("\n".join(lines) + "\n")


def run_eval(cfg: DictConfig, out: Path) -> dict:
    if not cfg.eval.splits:
        raise GreamError("eval.splits is empty (use e.g. [test, valid])")
    model = checkpoint_dir(cfg)
    with open(require_stage(cfg, "index") / "index.json") as handle:
        index = json.load(handle)
    per_split = {split: evaluate_split(cfg, model, index, str(split), out) for split in cfg.eval.splits}
    primary = str(cfg.eval.splits[0])
    results = {**per_split[primary], "split": primary, "checkpoint": str(model), "splits": per_split}
    write_json_atomic(out / "metrics.json", results)
    write_report(cfg, results, out / "report.md")
    return results


EVAL = Stage("eval", ("eval", "dataset.name"), eval_inputs, run_eval)
