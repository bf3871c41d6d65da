"""The ``eval`` stage: evaluate a checkpoint in both inference modes on the test (and validation) split.

Top-level ``metrics.json`` holds the first split's metrics (``direct``, ``reason``, …) and all splits under
``splits``; each split's predictions, report and plots are in ``<split>/``. The checkpoint is ``eval.checkpoint``: ``auto`` (the RL stage's model when that stage completed, else the SFT
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

STAGE_MODELS = {"sft": "model", "rl": "model"}  # sub-directory of a stage holding its final model


def checkpoint_dir(cfg: DictConfig) -> Path:
    choice = str(cfg.eval.checkpoint)
    if choice == "auto":
        choice = "rl" if read_manifest(stage_dir(cfg, "rl")) is not None else "sft"
    if choice in STAGE_MODELS:
        return require_stage(cfg, choice) / STAGE_MODELS[choice]
    path = Path(choice)
    if not (path / "config.json").is_file():
        raise GreamError(f"eval.checkpoint: {path} is not a model directory (no config.json)")
    return path


def eval_config(cfg: DictConfig, split: str) -> EvalConfig:
    values = OmegaConf.to_container(cfg.eval, resolve=True)
    for key in ("checkpoint", "splits"):
        values.pop(key)
    values.update(split=split, dataset=values.get("dataset") or str(cfg.dataset.name))
    try:
        return EvalConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise GreamError(f"eval: {err}") from None


def eval_inputs(cfg: DictConfig) -> list[Path]:
    model = checkpoint_dir(cfg)
    data, index = require_stage(cfg, "data"), require_stage(cfg, "index")
    return [model / "config.json", *sorted(model.glob("*.safetensors")), index / "index.json",
            *(data / f"{split}.jsonl" for split in cfg.eval.splits)]


def run_eval(cfg: DictConfig, out: Path) -> dict:
    from gream_pipeline.eval.runner import evaluate

    model = checkpoint_dir(cfg)
    with open(require_stage(cfg, "index") / "index.json") as handle:
        index = json.load(handle)
    per_split = {}
    if not cfg.eval.splits:
        raise GreamError("eval.splits is empty (use e.g. [test, valid])")
    for split in cfg.eval.splits:
        examples = read_jsonl(require_stage(cfg, "data") / f"{split}.jsonl")
        metrics = evaluate(model, index, examples, out / split, eval_config(cfg, split))
        per_split[split] = {k: v for k, v in metrics.items() if k != "meta"}
        per_split[split]["users"] = metrics["meta"]["n_users"]
        per_split[split]["users_per_s"] = metrics["meta"]["users_per_s"]
    primary = str(cfg.eval.splits[0])
    results = {**per_split[primary], "split": primary, "checkpoint": str(model), "splits": per_split}
    write_json_atomic(out / "metrics.json", results)
    return results


EVAL = Stage("eval", ("eval", "dataset.name"), eval_inputs, run_eval)
