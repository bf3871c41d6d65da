"""Stages ``rl`` (SRPO post-training) and ``rl_check`` (compose + check the verl GPU job on this host).

``rl.backend=trl`` (embedded default) trains SRPO on this machine through TRL (:mod:`gream_pipeline.rl.trl_srpo`),
optionally beside a plain-GRPO comparison run with the same seed and steps, and measures validation Recall@10
(direct) and Pass@1 (reasoning) before and after. ``rl.backend=verl`` launches verl's trainer with the SRPO recipe
(GPU hosts). Both write verl's RL parquet files and the job overrides to ``verl/`` so a GPU user can run the job.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gream_pipeline.artifacts import read_jsonl, write_json_atomic
from gream_pipeline.errors import GreamError
from gream_pipeline.rl import verl_job
from gream_pipeline.rl.prompts_data import rl_prompts, write_verl_parquet
from gream_pipeline.stages import Stage, require_stage, stage_dir


def _index(cfg: DictConfig) -> dict:
    with open(require_stage(cfg, "index") / "index.json") as handle:
        return json.load(handle)


def _sample(rows: list, limit, seed: int) -> list:
    return rows if limit is None or len(rows) <= int(limit) else random.Random(seed).sample(rows, int(limit))


def rl_inputs(cfg: DictConfig) -> list[Path]:
    sft, data, index = (require_stage(cfg, s) for s in ("sft", "data", "index"))
    return [sft / "model" / "model.safetensors", data / "train.jsonl", data / "valid.jsonl", index / "index.json"]


def emit_verl_data(cfg: DictConfig, out: Path, stage: str) -> tuple[list[Path], list[Path], list[str]]:
    """verl RL parquet files (direct + reasoning prompts, train and validation) and the job's Hydra overrides,
    written to ``out/verl``; the overrides name the files where ``stage`` commits them."""
    data, index = stage_dir(cfg, "data"), _index(cfg)
    train = _sample(read_jsonl(data / "train.jsonl"), cfg.rl.verl_max_prompts, cfg.seed)
    valid = _sample(read_jsonl(data / "valid.jsonl"), cfg.rl.validate_users or None, cfg.seed)
    files: dict[str, list[Path]] = {"train": [], "val": []}
    for split, rows in (("train", train), ("val", valid)):
        for mode in ("direct", "reason"):
            path = out / "verl" / f"{split}_{mode}.parquet"
            write_verl_parquet(rl_prompts(rows, index, mode), path, data_source=f"gream_{mode}")
            files[split].append(path)
    final = stage_dir(cfg, stage) / "verl"
    moved = lambda paths: [final / p.name for p in paths]  # noqa: E731  (paths after the stage is committed)
    overrides = verl_job.job_overrides(moved(files["train"]), moved(files["val"]),
                                       stage_dir(cfg, "sft") / "model", stage_dir(cfg, stage), {}) + \
        list(cfg.rl.verl_overrides)
    (out / "verl" / "overrides.txt").write_text("\n".join(overrides) + "\n")
    return files["train"], files["val"], overrides


def validate(cfg: DictConfig, model: Path, out: Path) -> dict:
    """Validation metrics of ``model``: direct mode on ``rl.validate_users`` users, reasoning mode on
    ``rl.validate_reason_users`` (the first users of the validation split, as in the eval stage)."""
    from dataclasses import replace

    from gream_pipeline.eval.runner import evaluate
    from gream_pipeline.eval.stage import eval_config

    examples = read_jsonl(stage_dir(cfg, "data") / "valid.jsonl")
    users = {"direct": cfg.rl.validate_users, "reason": cfg.rl.validate_reason_users}
    results = {}
    for mode in cfg.rl.validate_modes:
        mode_cfg = replace(eval_config(cfg, "valid", mode), max_users=int(users[mode]), plots=False)
        results[mode] = evaluate(model, _index(cfg), examples, out / mode, mode_cfg)[mode]
    return results


def run_rl(cfg: DictConfig, out: Path) -> dict:
    from gream_pipeline.rl.trl_srpo import train_srpo

    rl = cfg.rl
    _, _, overrides = emit_verl_data(cfg, out, "rl")
    sft_model = stage_dir(cfg, "sft") / "model"
    if rl.backend == "verl":
        verl_job.launch(overrides, out / "verl.log")
        return {"backend": "verl", "overrides": overrides}
    if rl.backend != "trl":
        raise GreamError(f"rl.backend: {rl.backend!r} is not 'trl' or 'verl'")
    train = _sample(read_jsonl(stage_dir(cfg, "data") / "train.jsonl"), rl.max_prompts, cfg.seed)
    records = rl_prompts(train, _index(cfg), str(rl.mode))
    trl_cfg = {**OmegaConf.to_container(rl.trl, resolve=True), "seed": int(cfg.seed)}
    summary: dict = {"backend": "trl", "mode": str(rl.mode), "prompts": len(records)}
    if rl.validate_users:
        summary["valid_before"] = validate(cfg, sft_model, out / "valid_before")
    summary["srpo"] = train_srpo(sft_model, records, out, {**trl_cfg, "advantage": "srpo"})
    if rl.validate_users:
        summary["valid_after"] = validate(cfg, out / "model", out / "valid_after")
    if rl.compare_grpo:
        summary["grpo"] = train_srpo(sft_model, records, out / "grpo_compare", {**trl_cfg, "advantage": "grpo"})
        if rl.validate_users:
            summary["grpo"]["valid_after"] = validate(cfg, out / "grpo_compare" / "model", out / "grpo_valid_after")
    write_json_atomic(out / "rl_summary.json", summary)
    return summary


def rl_check_inputs(cfg: DictConfig) -> list[Path]:
    return [require_stage(cfg, "data") / "train.jsonl", require_stage(cfg, "index") / "index.json",
            verl_job.RECIPE_DIR / f"{verl_job.RECIPE}.yaml"]


def run_rl_check(cfg: DictConfig, out: Path) -> dict:
    train_files, _, overrides = emit_verl_data(cfg, out, "rl_check")
    local = [o for o in overrides if not o.startswith(("data.train_files", "data.val_files"))]
    composed = verl_job.compose(local + [f"data.train_files=['{train_files[0]}']",
                                         f"data.val_files=['{train_files[0]}']"])
    (out / "verl_job.yaml").write_text(OmegaConf.to_yaml(composed))
    import pandas as pd

    truths = [row["ground_truth"] for row in pd.read_parquet(train_files[0])["reward_model"].head(8)]
    report = verl_job.check(composed, truths, seed=int(cfg.seed))
    write_json_atomic(out / "check.json", report)
    print(json.dumps(report, indent=2))
    return report


RL = Stage("rl", ("rl", "eval", "seed", "dataset.name"), rl_inputs, run_rl)
RL_CHECK = Stage("rl_check", ("rl", "seed", "dataset.name"), rl_check_inputs, run_rl_check,
                 enabled=lambda cfg: False)
