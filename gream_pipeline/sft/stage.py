"""The ``sft`` stage: prepare the student model, build D_align ∪ D_reason, emit the curriculum-ordered
LLaMA-Factory dataset and YAML, validate it with LLaMA-Factory's parser, and train (``sft.launch=run``).

``sft.launch=emit`` stops after writing and validating the YAML (GPU recipes composed on a CPU host); the YAML's
paths point at this stage's final directory, so ``llamafactory-cli train runs/<run>/sft/sft.yaml`` runs it there.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gream_pipeline.artifacts import read_json, read_jsonl
from gream_pipeline.errors import GreamError
from gream_pipeline.precision import resolve_bf16
from gream_pipeline.sft.llamafactory_glue import (LlamaFactoryArgsError, emit_dataset, global_batch_size, load_tokenizer,
                                                  llamafactory_args, validate_args, write_yaml)
from gream_pipeline.sft.model_prep import lf_token_args, prepare_model
from gream_pipeline.sft.tasks import build_alignment, count_targets, example_text, reasoning_examples
from gream_pipeline.stages import Input, Stage, StageContext

log = logging.getLogger("gream")


def _subset(rows: list, limit, seed: int) -> list:
    import random

    if limit is None or len(rows) <= int(limit):
        return rows
    return random.Random(seed).sample(rows, int(limit))


def build_examples(ctx: StageContext) -> tuple[list[dict], list[dict]]:
    """(D_align, D_reason) from the data, index and synth stages, capped by ``sft.max_*``."""
    cfg, sft = ctx.cfg, ctx.cfg.sft
    index = ctx.read_json("index", "index.json")
    reasoning = ctx.read_jsonl("synth", "reasoning.jsonl")
    align = build_alignment(ctx.read_jsonl("data", "train.jsonl"), ctx.read_json("data", "items.json"),
                            _subset(reasoning, sft.max_preference, cfg.seed), index, seed=int(cfg.seed),
                            max_seqrec=sft.max_seqrec, seqrec_format=str(sft.seqrec_format),
                            max_history=int(cfg.data.max_history))
    item_tasks = ("item2id", "id2title", "id2desc")
    keep = set(_subset([i for i, e in enumerate(align) if e["task"] in item_tasks], sft.max_item_tasks, cfg.seed))
    align = [e for i, e in enumerate(align) if e["task"] not in item_tasks or i in keep]
    reason = reasoning_examples(_subset(reasoning, sft.max_reason, cfg.seed + 1), index)
    return align, reason


def tokenizer_corpus(ctx: StageContext, align: list[dict], reason: list[dict]) -> list[str]:
    """Texts the scratch model's BPE tokenizer is trained on: item texts plus every prompt and response."""
    items = ctx.read_json("data", "items.json")
    texts = [" ".join(v for v in rec.values() if v) for rec in items.values()]
    return texts + [example_text(e) for e in align + reason]


def sft_bf16(sft: DictConfig) -> bool:
    """``sft.bf16`` resolved for the training device (``auto``: bf16 autocast where it is native)."""
    return resolve_bf16(sft.bf16, "cpu" if sft.use_cpu else "cuda")


def lf_args(cfg: DictConfig, model_dir: Path, dataset_dir: Path, output_dir: Path, steps_per_epoch: int) -> dict:
    sft = cfg.sft
    return llamafactory_args(
        model_dir, dataset_dir, output_dir, per_device_batch=int(sft.per_device_batch), grad_accum=int(sft.grad_accum),
        lr=float(sft.lr), cutoff_len=int(sft.cutoff_len), bf16=sft_bf16(sft), use_cpu=bool(sft.use_cpu),
        finetuning_type=str(sft.finetuning_type), logging_steps=int(sft.logging_steps),
        save_steps=steps_per_epoch if sft.checkpoint_every_epoch else None, seed=int(cfg.seed),
        lr_scheduler_type=str(sft.lr_scheduler_type), warmup_ratio=float(sft.warmup_ratio),
        gradient_checkpointing=bool(sft.gradient_checkpointing), extra=OmegaConf.to_container(sft.extra, resolve=True))


def train(yaml_path: Path, log_path: Path, budget_s: float | None = None, env: dict | None = None) -> None:
    """Run ``llamafactory-cli train`` on the YAML in a subprocess; its output is shown and kept in ``log_path``.
    With ``budget_s`` LF runs through ``run_exp`` with a wall-clock budget callback (:mod:`.budget`). ``env``: the
    child's environment (default: this process's), e.g. :meth:`gream_pipeline.sft.launch.LaunchPlan.child_env`."""
    env = {**(os.environ if env is None else env), "DISABLE_VERSION_CHECK": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1"}
    if budget_s is None:
        cmd = [sys.executable, "-c", "import sys; from llamafactory.cli import main; sys.exit(main())", "train",
               str(yaml_path)]
    else:
        cmd = [sys.executable, "-m", "gream_pipeline.sft.budget", str(yaml_path), str(float(budget_s))]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        for line in proc.stdout:
            log.write(line)
            sys.stderr.write(line)
        if proc.wait() != 0:
            raise GreamError(f"LLaMA-Factory training failed (exit {proc.returncode}); see {log_path}")


def loss_summary(trainer_log: Path) -> dict:
    """First/last logged losses and the mean over the first and last tenth of the logged steps."""
    rows = [r for r in read_jsonl(trainer_log) if "loss" in r] if trainer_log.is_file() else []
    if not rows:
        return {}
    losses = [float(r["loss"]) for r in rows]
    tenth = max(1, len(losses) // 10)
    return {"logged_steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1],
            "mean_first_tenth": sum(losses[:tenth]) / tenth, "mean_last_tenth": sum(losses[-tenth:]) / tenth,
            "total_steps": int(rows[-1].get("total_steps", 0))}


def prepare(ctx: StageContext, id_tokens: list[str], align: list[dict], reason: list[dict]
            ) -> tuple[str | None, dict, dict]:
    """(base model folder inside this stage's output, or None for a model used in place; model info; extra
    LLaMA-Factory args) for ``model.source``.

    ``scratch`` and ``gguf_package`` are built into ``base_model/`` with the ID tokens. A ``local`` model (e.g.
    Qwen3-4B on a GPU host) is used in place: LLaMA-Factory adds the ID tokens as non-special tokens
    (``add_tokens`` + ``resize_vocab``) when it loads the model, so no multi-GB copy is made here.
    """
    cfg, model_cfg = ctx.cfg, ctx.cfg.model
    if model_cfg.source == "local":
        path = Path(str(model_cfg.path))
        if cfg.sft.launch == "run" and not (path / "config.json").is_file():
            raise GreamError(f"model.path: {path} is not a local HF model directory (no config.json)")
        token_args, token_report = lf_token_args(path, id_tokens)
        return None, {"source": "local", "path": str(path), "num_id_tokens": len(id_tokens), **token_report}, \
            token_args
    base = prepare_model(str(model_cfg.source), ctx.output("base_model"), id_tokens,
                         tokenizer_corpus(ctx, align, reason) if model_cfg.source == "scratch" else (),
                         arch=OmegaConf.to_container(model_cfg.arch, resolve=True), path=model_cfg.path,
                         seed=int(cfg.seed))
    return "base_model", read_json(base / "prep.json"), {}


def run_sft(ctx: StageContext) -> dict:
    cfg, sft = ctx.cfg, ctx.cfg.sft
    if sft.launch not in ("run", "emit"):
        raise GreamError(f"sft.launch: {sft.launch!r} is not 'run' or 'emit'")
    if sft.time_budget_min is not None and (float(sft.time_budget_min) <= 0 or int(sft.world_size) > 1):
        raise GreamError(f"sft.time_budget_min={sft.time_budget_min}: must be > 0 minutes and needs world_size 1 "
                         f"(it runs LLaMA-Factory in one process); got world_size {sft.world_size}")
    plan = None
    if sft.launch == "run":  # processes + per-device batch × accumulation on this host, refused before any work
        from gream_pipeline.sft.launch import count_devices, plan_launch

        plan = plan_launch(
            global_batch=global_batch_size(int(sft.per_device_batch), int(sft.grad_accum), int(sft.world_size)),
            per_device_batch=int(sft.per_device_batch), grad_accum=int(sft.grad_accum),
            world_size=int(sft.world_size), use_cpu=bool(sft.use_cpu), devices=count_devices(), env=os.environ,
            deepspeed=bool(OmegaConf.select(sft, "extra.deepspeed")), in_process=sft.time_budget_min is not None)
        for note in plan.notes:
            log.warning("sft launch: %s", note)
    align, reason = build_examples(ctx)
    id_tokens = ctx.read_json("index", "vocab.json")
    base, model_info, token_args = prepare(ctx, id_tokens, align, reason)
    batch = global_batch_size(int(sft.per_device_batch), int(sft.grad_accum), int(sft.world_size))
    model_dir = ctx.output(base) if base is not None else Path(str(cfg.model.path))
    tokenizer = load_tokenizer(model_dir, id_tokens) if (model_dir / "tokenizer_config.json").is_file() else None
    emitted = emit_dataset(ctx.output("dataset"), align, reason, batch, int(sft.epochs), float(sft.gamma),
                           int(cfg.seed), length_grouped=bool(sft.length_grouped_batches), tokenizer=tokenizer,
                           cutoff_len=int(sft.cutoff_len))
    for kind, report in (emitted.get("cutoff") or {}).items():
        if report.get("dropped_turns"):
            log.warning("sft: %d of %d supervised %s turns do not fit sft.cutoff_len=%s and lose (part of) their "
                        "loss in LLaMA-Factory; raise sft.cutoff_len", report["dropped_turns"],
                        report["assistant_turns"], kind, sft.cutoff_len)

    def args_at(where) -> dict:  # the same arguments with the stage's paths resolved by ``where``
        model = where(base) if base is not None else Path(str(cfg.model.path))
        return {**lf_args(cfg, model, where("dataset"), where("model"), emitted["steps_per_epoch"]), **token_args}

    run_args = args_at(ctx.output)
    if plan is not None:  # this host's geometry: the same global batch, so the same curriculum blocks
        run_args.update(per_device_train_batch_size=plan.per_device_batch, gradient_accumulation_steps=plan.grad_accum)
    try:
        validate_args(run_args, batch_size=batch, world_size=plan.world_size if plan else int(sft.world_size))
    except LlamaFactoryArgsError as err:
        raise GreamError(str(err)) from None
    write_yaml(args_at(ctx.final_path), ctx.output("sft.yaml"))  # for `llamafactory-cli train` after the stage
    counts = {"seqrec_format": str(sft.seqrec_format),
              "examples": {t: sum(e["task"] == t for e in align) for t in sorted({e["task"] for e in align})},
              "targets": {t: sum(count_targets(e) for e in align if e["task"] == t)
                          for t in sorted({e["task"] for e in align})},
              "reason_examples": len(reason), "cutoff": emitted.get("cutoff"), "steps": emitted["num_steps"],
              "steps_per_epoch": emitted["steps_per_epoch"], "global_batch": batch, "launch": str(sft.launch),
              "precision": "bf16" if sft_bf16(sft) else "fp32",
              "model": model_info}
    if sft.launch == "run":
        run_yaml = write_yaml(run_args, ctx.output(".sft.run.yaml"))
        budget = None if sft.time_budget_min is None else 60.0 * float(sft.time_budget_min)
        counts["launch_plan"] = plan.to_dict()
        train(run_yaml, ctx.output("llamafactory.log"), budget,
              env=plan.child_env(os.environ, Path(sys.executable).parent))
        run_yaml.unlink()
        counts["loss"] = loss_summary(ctx.output("model/trainer_log.jsonl"))
        if ctx.output("model/budget.json").is_file():
            counts["time_budget"] = read_json(ctx.output("model/budget.json"))
    ctx.write_json("summary.json", counts)
    return counts


SFT = Stage(
    "sft", config=("sft", "model", "seed", "data.max_history", "dataset.name"), run=run_sft,
    consumes=(Input("data", "train.jsonl"), Input("data", "items.json"), Input("index", "index.json"),
              Input("index", "vocab.json"), Input("synth", "reasoning.jsonl")),
    produces=("sft.yaml", "summary.json", "dataset/schedule.json"),
    description="ID tokens, D_align ∪ D_reason in curriculum order for LLaMA-Factory; trains with sft.launch=run")
