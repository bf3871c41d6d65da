"""LLaMA-Factory 0.9.5 glue for the curriculum SFT (paper §4.3): dataset emission, trainer arguments, validation.

**Delivery of the curriculum: one pre-ordered file.** ``emit_dataset`` cuts D_align and D_reason into homogeneous
batches of the *global* batch size, orders them with :func:`gream_pipeline.sft.curriculum.schedule` and writes ONE
sharegpt file that already contains all E epochs in training order. LLaMA-Factory then runs with
``num_train_epochs: 1`` and ``disable_shuffling: true``, which makes its ``CustomSeq2SeqTrainer._get_train_sampler``
return a ``SequentialSampler``: the i-th global step consumes rows [i·B, (i+1)·B) of the file. This was preferred to
subclassing LF's trainer sampler because LF 0.9.5 has no plugin point for the trainer class (a subclass means
re-implementing ``run_sft`` and patching ``tuner``), so the stock ``run_exp``/``llamafactory-cli train`` YAML path
works unchanged on any host, the exact order is an inspectable artifact (``schedule.json`` + the file) and
LF's data pipeline is kept order-preserving (it only drops structurally invalid rows, which ``emit_dataset``
rejects up front). Costs: the file holds E copies of the data (text only), and the LR schedule spans all E epochs
as one (the same as E real epochs). Options that reorder or drop data (``val_size``, ``packing``, ``streaming``,
``max_samples``, interleaving, several datasets, ``group_by_length``) are rejected by :func:`validate_args`.

**Batch geometry.** ``batch_size`` passed to ``emit_dataset`` must equal the global batch
``per_device_train_batch_size × gradient_accumulation_steps × world_size`` (one process on CPU: world_size = 1;
with DDP accelerate hands consecutive per-device batches to consecutive ranks, so a global step is still a
contiguous block of the file). **Partial last batches are padded** (never dropped, so a small D_reason is never
lost): the last batch of a type is filled cyclically with that epoch's first examples of the same type, so every
batch is full and homogeneous and every example appears at least once per epoch; example membership of the
batches is reshuffled every epoch (seeded).

**Format and template.** Rows are sharegpt ``{"system", "conversations": [{"from": "human"}, {"from": "gpt"}]}``
with a ``system`` column (the ``openai`` formatting appends a "detailed thinking off" system line). Template
``qwen3_nothink``: plain ChatML identical to the chat template written by ``model_prep`` (and to Qwen3-Instruct-2507),
no reasoning-template rewriting of ``<think>`` blocks (the ``qwen3`` template is a ReasoningTemplate), no persona
(``qwen`` injects "You are Qwen…", ``smollm2`` "…named SmolLM…"); ``default_system: ""`` makes that explicit for
rows without a system prompt.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gream_pipeline.artifacts import write_json_atomic, write_jsonl
from gream_pipeline.errors import GreamError
from gream_pipeline.sft.curriculum import ALIGN, REASON, reason_fraction, schedule

DATASET_NAME = "gream_sft"
DATA_FILE = "gream_sft.jsonl"
TEMPLATE = "qwen3_nothink"
DATASET_INFO = {
    "file_name": DATA_FILE,
    "formatting": "sharegpt",
    "columns": {"messages": "conversations", "system": "system"},
    "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
}


class LlamaFactoryArgsError(GreamError):
    """LLaMA-Factory (or gream's ordering rules) rejected the SFT arguments."""


# ---------------------------------------------------------------------------------------------------------- data
def to_sharegpt(example: Mapping[str, Any], kind: str) -> dict:
    """A sharegpt row from either a sharegpt dict or a task dict ``{"system","prompt","response"}``
    (:mod:`gream_pipeline.sft.tasks`); ``kind``/``task`` are kept as inert metadata columns (LF drops them)."""
    if "conversations" in example:
        conv = example["conversations"]
        if len(conv) != 2 or conv[0].get("from") != "human" or conv[1].get("from") != "gpt":
            raise ValueError(f"a sharegpt example needs exactly one human and one gpt turn: {conv}")
        prompt, response = conv[0].get("value"), conv[1].get("value")
    else:
        prompt, response = example.get("prompt"), example.get("response")
    system = example.get("system") or ""
    for field, value in (("prompt", prompt), ("response", response)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{kind} example has an empty or non-string {field}: {dict(example)!r:.200}")
    if not isinstance(system, str):
        raise TypeError(f"{kind} example has a non-string system prompt")
    return {"system": system, "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": response}],
            "kind": kind, "task": str(example.get("task", kind))}


def make_batches(n: int, batch_size: int, rng: random.Random, lengths: Sequence[int] | None = None,
                 group_batches: int = 50) -> list[list[int]]:
    """Shuffle 0..n-1 and cut into full batches; the last partial batch is padded cyclically with the epoch's
    first examples (see module docstring).

    With ``lengths`` the batches are *length-grouped*: the shuffled examples are cut into windows of
    ``group_batches`` batches, each window is sorted by length before cutting, and the batch order is shuffled
    again. Batches keep random membership across epochs but hold examples of similar length, so much less padding
    is computed (the idea of transformers' ``LengthGroupedSampler``, applied at batch level so that the curriculum
    order of homogeneous batches is unchanged)."""
    perm = list(range(n))
    rng.shuffle(perm)
    if lengths is not None:
        window = batch_size * max(1, group_batches)
        perm = [i for k in range(0, n, window)
                for i in sorted(perm[k:k + window], key=lambda j: lengths[j], reverse=True)]
    batches = [perm[k:k + batch_size] for k in range(0, n, batch_size)]
    if batches and len(batches[-1]) < batch_size:
        missing = batch_size - len(batches[-1])
        batches[-1] = batches[-1] + [perm[k % n] for k in range(missing)]
    if lengths is not None:
        rng.shuffle(batches)
    return batches


def row_length(row: Mapping[str, Any]) -> int:
    """Characters of a sharegpt row (system + turns): a tokenizer-free proxy of its token count."""
    return len(row.get("system") or "") + sum(len(turn["value"]) for turn in row["conversations"])


def global_batch_size(per_device_batch: int, grad_accum: int, world_size: int = 1) -> int:
    """The number of examples per optimizer step: the ``batch_size`` that ``emit_dataset`` must use."""
    return per_device_batch * grad_accum * world_size


def emit_dataset(dataset_dir: Path, align: list[dict], reason: list[dict], batch_size: int, epochs: int,
                 gamma: float, seed: int, length_grouped: bool = False) -> dict:
    """Write the curriculum-ordered SFT file (all epochs), ``dataset_info.json``, ``schedule.json`` (per global
    step: epoch, kind, batch index, example indices into ``align``/``reason``) and ``curriculum.png``.
    ``length_grouped`` groups examples of similar length into the same batch (:func:`make_batches`).
    Returns a summary (counts, ``steps_per_epoch``, ``num_steps``, paths)."""
    if batch_size < 1 or epochs < 1:
        raise ValueError(f"batch_size and epochs must be >= 1 (got {batch_size}, {epochs})")
    rows = {ALIGN: [to_sharegpt(ex, ALIGN) for ex in align], REASON: [to_sharegpt(ex, REASON) for ex in reason]}
    if not rows[ALIGN] and not rows[REASON]:
        raise ValueError("no SFT examples to emit")
    n_batches = {kind: math.ceil(len(rows[kind]) / batch_size) for kind in rows}
    rng = random.Random(f"gream-sft-batches:{seed}")
    lengths = {kind: [row_length(r) for r in rows[kind]] if length_grouped else None for kind in rows}
    members = [{kind: make_batches(len(rows[kind]), batch_size, rng, lengths[kind]) for kind in (ALIGN, REASON)}
               for _ in range(epochs)]
    plan = schedule(n_batches[ALIGN], n_batches[REASON], epochs=epochs, gamma=gamma, seed=seed)
    steps, out_rows = [], []
    for epoch, order in enumerate(plan, start=1):
        for kind, j in order:
            idx = members[epoch - 1][kind][j]
            steps.append({"step": len(steps) + 1, "epoch": epoch, "kind": kind, "batch": j, "examples": idx})
            out_rows.extend(rows[kind][i] for i in idx)
    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(dataset_dir / DATA_FILE, out_rows)
    write_json_atomic(dataset_dir / "dataset_info.json", {DATASET_NAME: DATASET_INFO})
    summary = {
        "dataset": DATASET_NAME, "dataset_dir": str(dataset_dir), "file": str(dataset_dir / DATA_FILE),
        "batch_size": batch_size, "epochs": epochs, "gamma": gamma, "seed": seed, "length_grouped": length_grouped,
        "n_align_examples": len(rows[ALIGN]), "n_reason_examples": len(rows[REASON]),
        "n_align_batches": n_batches[ALIGN], "n_reason_batches": n_batches[REASON],
        "padded_per_epoch": {k: n_batches[k] * batch_size - len(rows[k]) for k in rows},
        "steps_per_epoch": n_batches[ALIGN] + n_batches[REASON], "num_steps": len(steps), "num_rows": len(out_rows),
        "schedule": str(dataset_dir / "schedule.json"), "plot": str(dataset_dir / "curriculum.png"),
    }
    write_json_atomic(dataset_dir / "schedule.json", {**summary, "steps": steps}, indent=None)
    plot_schedule(steps, summary["steps_per_epoch"], dataset_dir / "curriculum.png")
    return summary


def plot_schedule(steps: Sequence[Mapping], steps_per_epoch: int, path: Path) -> None:
    """Reasoning fraction over global steps (trailing window), epoch boundaries and per-step kinds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [s["kind"] for s in steps]
    window = max(min(5, steps_per_epoch), steps_per_epoch // 10)
    xs = [s["step"] for s in steps]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(xs, reason_fraction(kinds, window), lw=1.5, label=f"reasoning fraction (last {window} steps)")
    ax.scatter(xs, [1.04 if k == REASON else -0.04 for k in kinds], s=4, c=["C3" if k == REASON else "C0"
                                                                          for k in kinds], label="step kind")
    for e in range(1, len(steps) // max(1, steps_per_epoch)):
        ax.axvline(e * steps_per_epoch + 0.5, color="grey", ls="--", lw=0.8)
    ax.set(xlabel="global step", ylabel="reasoning batches", ylim=(-0.1, 1.1),
           title="Curriculum SFT batch order (paper §4.3)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------- args
def llamafactory_args(model_dir: Path | str, dataset_dir: Path | str, output_dir: Path | str, *,
                      template: str = TEMPLATE, per_device_batch: int, grad_accum: int, lr: float, cutoff_len: int,
                      bf16: bool = False, use_cpu: bool = False, finetuning_type: str = "full",
                      logging_steps: int = 1, save_steps: int | None = None, seed: int = 0,
                      lr_scheduler_type: str = "cosine", warmup_ratio: float = 0.0,
                      gradient_checkpointing: bool = True, extra: Mapping[str, Any] | None = None) -> dict:
    """Arguments for ``llamafactory.train.tuner.run_exp`` (or a ``llamafactory-cli train`` YAML) that consume the
    emitted file in order: one LF epoch over the pre-ordered file, sequential sampler, no reordering options.
    ``save_steps`` (e.g. the summary's ``steps_per_epoch``: one checkpoint per curriculum epoch) or, when None,
    one checkpoint at the end. ``gradient_checkpointing`` (LF's default: on) trades ~1/3 more compute for memory:
    worth it for a 4B model on GPUs, pure cost for the tiny CPU model. ``extra`` is merged last (e.g.
    ``deepspeed``, ``save_only_model``)."""
    args: dict[str, Any] = {
        "stage": "sft", "do_train": True, "finetuning_type": finetuning_type,
        "model_name_or_path": str(model_dir), "trust_remote_code": False, "resize_vocab": False,
        "dataset": DATASET_NAME, "dataset_dir": str(dataset_dir), "template": template, "default_system": "",
        "cutoff_len": cutoff_len, "overwrite_cache": True, "packing": False, "streaming": False,
        "mix_strategy": "concat", "disable_shuffling": True,
        "output_dir": str(output_dir), "overwrite_output_dir": True,
        "per_device_train_batch_size": per_device_batch, "gradient_accumulation_steps": grad_accum,
        "learning_rate": lr, "num_train_epochs": 1.0, "lr_scheduler_type": lr_scheduler_type,
        "warmup_steps": warmup_ratio,  # transformers 5: a float < 1 is a ratio (`warmup_ratio` is deprecated)
        "bf16": bf16, "use_cpu": use_cpu, "seed": seed, "dataloader_drop_last": False,
        "disable_gradient_checkpointing": not gradient_checkpointing,
        "logging_steps": logging_steps, "plot_loss": True, "report_to": "none",
        "save_strategy": "steps" if save_steps else "epoch",
    }
    if save_steps:
        args["save_steps"] = save_steps
    args.update(extra or {})
    return args


ORDER_RULES = (  # (key, predicate on the value, why)
    ("disable_shuffling", lambda v: v is True, "must be true: the file is already in curriculum order"),
    ("num_train_epochs", lambda v: v is not None and float(v) == 1.0, "must be 1: the file holds all epochs"),
    ("val_size", lambda v: not v, "splits (and shuffles) the training file"),
    ("packing", lambda v: not v, "packs rows across batch boundaries"),
    ("neat_packing", lambda v: not v, "packs rows across batch boundaries"),
    ("streaming", lambda v: not v, "shuffles with a buffer"),
    ("max_samples", lambda v: v is None, "truncates the file"),
    ("mix_strategy", lambda v: v in (None, "concat"), "interleaving reorders rows"),
    ("group_by_length", lambda v: not v, "reorders rows by length"),
    ("dataset", lambda v: isinstance(v, str) and "," not in v, "must be the single emitted dataset"),
)


def check_order_preserving(args: Mapping[str, Any], batch_size: int | None = None, world_size: int = 1) -> None:
    """gream's rules on top of LF's parser: the config must consume the emitted file in order and in whole
    global batches of ``batch_size`` examples."""
    problems = [f"{key}={args.get(key)!r}: {why}" for key, ok, why in ORDER_RULES if not ok(args.get(key))]
    if batch_size is not None:
        per_device = int(args.get("per_device_train_batch_size", 8))
        accum = int(args.get("gradient_accumulation_steps", 1))
        got = global_batch_size(per_device, accum, world_size)
        if got != batch_size:
            problems.append(f"per_device_train_batch_size×gradient_accumulation_steps×world_size = "
                            f"{per_device}×{accum}×{world_size} = {got} != the emitted batch size {batch_size}")
    if problems:
        raise LlamaFactoryArgsError("SFT arguments would break the curriculum order: " + "; ".join(problems))


def check_files(args: Mapping[str, Any]) -> None:
    """The model directory and the emitted dataset exist (skip for configs meant for another host)."""
    model = Path(str(args.get("model_name_or_path")))
    if not (model / "config.json").is_file():
        raise LlamaFactoryArgsError(f"model_name_or_path {model} is not a local HF model directory (no config.json)")
    info_path = Path(str(args.get("dataset_dir", "data"))) / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    entry = info.get(str(args.get("dataset")))
    if entry is None or not (info_path.parent / entry.get("file_name", "")).is_file():
        raise LlamaFactoryArgsError(f"dataset {args.get('dataset')!r} is not emitted in {info_path}")


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def validate_args(args: Mapping[str, Any], *, batch_size: int | None = None, world_size: int = 1,
                  require_files: bool = False) -> None:
    """Validate SFT arguments with gream's ordering rules and LLaMA-Factory's own parser
    (``llamafactory.hparams.get_train_args``: every key must be known, cross-field checks, TrainingArguments
    post-init) plus the template name (LF checks it only when it loads the tokenizer). The parser never opens the
    model, so a GPU config (e.g. Qwen3-4B, bf16) validates on a CPU host: on a host without an accelerator the
    check runs on a copy with ``use_cpu: true`` and without ``deepspeed`` (the only hardware-bound settings).
    ``require_files`` also checks the model directory and the emitted dataset (leave False for another host's
    config). Raises :class:`LlamaFactoryArgsError`."""
    check_order_preserving(args, batch_size, world_size)
    if require_files:
        check_files(args)
    parsed = dict(args)
    if not _has_accelerator():
        parsed.update(use_cpu=True)
        parsed.pop("deepspeed", None)
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import get_train_args

    if args.get("template") not in TEMPLATES:  # LF checks this only when it loads the tokenizer
        raise LlamaFactoryArgsError(f"LLaMA-Factory rejected the SFT arguments: template {args.get('template')!r} "
                                    f"does not exist (e.g. {TEMPLATE!r})")
    previous = os.environ.pop("ALLOW_EXTRA_ARGS", None)  # unknown keys must fail
    try:
        get_train_args(parsed)
    except (ValueError, TypeError, ImportError) as err:
        raise LlamaFactoryArgsError(f"LLaMA-Factory rejected the SFT arguments: {err}") from err
    finally:
        if previous is not None:
            os.environ["ALLOW_EXTRA_ARGS"] = previous


def write_yaml(args: Mapping[str, Any], path: Path) -> Path:
    """Write ``args`` as a ``llamafactory-cli train`` YAML (atomic), keys in insertion order."""
    import tempfile

    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(dict(args), handle, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)
    return path
