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

**Format and template.** Rows are sharegpt ``{"system", "conversations": [{"from": "human"}, {"from": "gpt"}, …]}``
with a ``system`` column (the ``openai`` formatting appends a "detailed thinking off" system line): one turn pair,
or several for the ``sequence`` rows (``sft.seqrec_format``). LF's supervised processor
(``processor/supervised.py``) labels the response of *every* turn pair (``mask_history`` false, enforced by
:func:`check_order_preserving`), masks the prompts, and drops the turns beyond ``cutoff_len`` without a warning:
:func:`fit_to_cutoff` measures each row with the training tokenizer and LF's template and cuts multi-turn rows that
would lose turns (its report's ``dropped_turns`` is 0 for them). Template
``qwen3_nothink``: plain ChatML identical to the chat template written by ``model_prep`` (and to Qwen3-Instruct-2507),
no reasoning-template rewriting of ``<think>`` blocks (the ``qwen3`` template is a ReasoningTemplate), no persona
(``qwen`` injects "You are Qwen…", ``smollm2`` "…named SmolLM…"); ``default_system: ""`` makes that explicit for
rows without a system prompt.

**What the curriculum counts.** N_align / N_reason are numbers of *batches of rows* (paper §4.3: the scheduling
unit is a homogeneous batch; equation unchanged). A ``sequence`` row carries several targets, so an alignment batch
supervises more targets than a ``per_target`` one; the summary reports rows and targets (``n_*_targets``).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gream_pipeline.artifacts import write_json, write_jsonl
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
    """A sharegpt row from either a sharegpt dict (``conversations``: one or more human → gpt turn pairs, e.g. the
    multi-turn ``sequence`` rows) or a task dict ``{"system","prompt","response"}`` (:mod:`gream_pipeline.sft.tasks`);
    ``kind``/``task`` are kept as inert metadata columns (LF drops them). Every turn must be a non-empty string:
    LF's sharegpt converter silently skips a row whose roles do not alternate human/gpt."""
    if "conversations" in example:
        conv = list(example["conversations"])
        roles = [turn.get("from") for turn in conv]
        if not conv or len(conv) % 2 or roles != ["human", "gpt"] * (len(conv) // 2):
            raise ValueError(f"a sharegpt example needs alternating human/gpt turns, human first, gpt last: "
                             f"{roles}")
        values = [turn.get("value") for turn in conv]
    else:
        values = [example.get("prompt"), example.get("response")]
    system = example.get("system") or ""
    for k, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            field = ("prompt", "response")[k % 2]
            raise ValueError(f"{kind} example has an empty or non-string {field} (turn {k}): {dict(example)!r:.200}")
    if not isinstance(system, str):
        raise TypeError(f"{kind} example has a non-string system prompt")
    return {"system": system,
            "conversations": [{"from": ("human", "gpt")[k % 2], "value": v} for k, v in enumerate(values)],
            "kind": kind, "task": str(example.get("task", kind)),
            "targets": int(example.get("targets", len(values) // 2))}


def n_targets(row: Mapping[str, Any]) -> int:
    """Supervised next-item targets of a sharegpt row: its ``targets`` column, else its assistant turns."""
    return int(row["targets"]) if "targets" in row else sum(turn["from"] == "gpt" for turn in row["conversations"])


# ------------------------------------------------------------------------------------------- tokens and cutoff
def lf_template(tokenizer, template: str = TEMPLATE, default_system: str = ""):
    """LLaMA-Factory's template object for ``template``, fixed for ``tokenizer`` exactly as LF's training does
    (``get_template_and_fix_tokenizer`` with the emitted ``default_system``)."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    return get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template, default_system=default_system))


def lf_encode(row: Mapping[str, Any], tokenizer, template) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids) per turn pair of a sharegpt row, encoded by LF's template as its supervised
    processor does (``Template.encode_multiturn``; with ``mask_history`` false every response is a label)."""
    messages = [{"role": "user" if turn["from"] == "human" else "assistant", "content": turn["value"]}
                for turn in row["conversations"]]
    return template.encode_multiturn(tokenizer, messages, row.get("system") or None, None)


def kept_turns(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], cutoff_len: int, efficient_eos: bool = False
               ) -> int:
    """How many leading turn pairs LF's supervised processor keeps *whole* at ``cutoff_len`` (mask_history false):
    it appends pairs while the running length is below the cutoff and truncates the pair that crosses it
    (``infer_seqlen``), then stops, so exactly the pairs whose cumulative length fits are kept intact."""
    total, kept = (1 if efficient_eos else 0), 0
    for source, target in pairs:
        total += len(source) + len(target)
        if total > cutoff_len:
            break
        kept += 1
    return kept


def _split_to_fit(row: dict, n_pairs: int, cutoff_len: int, encode) -> list[dict]:
    """Consecutive chunks of a multi-turn row's turn pairs, each fitting ``cutoff_len`` when re-encoded (the system
    goes with every chunk's first turn); greedy, longest chunk first. ValueError if one pair cannot fit alone."""
    conv, out, start = row["conversations"], [], 0
    while start < n_pairs:
        end = n_pairs
        while True:
            chunk = {**row, "conversations": conv[2 * start:2 * end]}
            kept = kept_turns(encode(chunk), cutoff_len)  # a prefix of a chunk encodes to a prefix of its encoding
            if kept == end - start:
                break
            end = start + kept
            if kept == 0:
                raise ValueError(f"turn pair {start} of a {row.get('task')} row does not fit "
                                 f"cutoff_len={cutoff_len} on its own")
        out.append(chunk)
        start = end
    return out


def fit_to_cutoff(rows: Sequence[dict], tokenizer, cutoff_len: int, template: str = TEMPLATE
                  ) -> tuple[list[dict], dict]:
    """Make every supervised turn survive LLaMA-Factory's ``cutoff_len``: LF silently drops the turns of a
    multi-turn row beyond the cutoff, so such a row is cut into consecutive rows that fit (measured with
    ``tokenizer`` and LF's own template, :func:`lf_encode`). One-turn rows are left as they are (LF truncates their
    response; counted). Returns (rows, report): ``rows_in/out``, ``rows_split``, ``assistant_turns``,
    ``dropped_turns`` (turns LF would not train on whole after fitting; 0 unless one-turn rows are too long),
    ``truncated_one_turn_rows``, ``tokens``, ``loss_tokens``, ``max_row_tokens``."""
    tmpl = lf_template(tokenizer, template)
    efficient_eos = bool(getattr(tmpl, "efficient_eos", False))

    def encode(row):
        return lf_encode(row, tokenizer, tmpl)

    out, report = [], {"cutoff_len": cutoff_len, "template": template, "rows_in": len(rows), "rows_split": 0,
                       "assistant_turns": 0, "dropped_turns": 0, "truncated_one_turn_rows": 0, "tokens": 0,
                       "loss_tokens": 0, "max_row_tokens": 0}
    for row in rows:
        pairs = encode(row)
        pieces = [row]
        if kept_turns(pairs, cutoff_len, efficient_eos) < len(pairs) and len(pairs) > 1:
            pieces = [{**piece, "targets": sum(t["from"] == "gpt" for t in piece["conversations"])}
                      for piece in _split_to_fit(row, len(pairs), cutoff_len - efficient_eos, encode)]
            report["rows_split"] += 1
        for piece in pieces:
            piece_pairs = pairs if piece is row else encode(piece)
            kept = kept_turns(piece_pairs, cutoff_len, efficient_eos)
            report["assistant_turns"] += len(piece_pairs)
            report["dropped_turns"] += len(piece_pairs) - kept
            report["truncated_one_turn_rows"] += len(piece_pairs) == 1 and kept == 0
            length = sum(len(a) + len(b) for a, b in piece_pairs) + efficient_eos
            report["tokens"] += min(length, cutoff_len)
            report["loss_tokens"] += sum(len(b) for _, b in piece_pairs[:kept])
            report["max_row_tokens"] = max(report["max_row_tokens"], length)
            out.append(piece)
    report["rows_out"] = len(out)
    return out, report


def load_tokenizer(model_dir: Path | str, id_tokens: Sequence[str] = ()):
    """The tokenizer LF will train with: ``model_dir``'s, plus the ID tokens as non-special tokens where they are
    missing (what LF's ``add_tokens`` does for a ``local`` model), for :func:`fit_to_cutoff`."""
    from transformers import AutoTokenizer

    from gream_pipeline.sft.model_prep import add_id_tokens

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    vocab = tok.get_vocab()
    add_id_tokens(tok, [t for t in id_tokens if t not in vocab])
    return tok


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
                 gamma: float, seed: int, length_grouped: bool = False, tokenizer=None,
                 cutoff_len: int | None = None, template: str = TEMPLATE) -> dict:
    """Write the curriculum-ordered SFT file (all epochs), ``dataset_info.json``, ``schedule.json`` (per global
    step: epoch, kind, batch index, example indices into the emitted rows of ``align``/``reason``) and
    ``curriculum.png``. ``length_grouped`` groups examples of similar length into the same batch
    (:func:`make_batches`). With ``tokenizer`` and ``cutoff_len`` (the training tokenizer, e.g.
    :func:`load_tokenizer`, and ``sft.cutoff_len``) multi-turn rows too long for LF's cutoff are first cut so that
    no supervised turn is dropped (:func:`fit_to_cutoff`; report in ``summary["cutoff"]``).
    Returns a summary (row and target counts, ``steps_per_epoch``, ``num_steps``, paths)."""
    if batch_size < 1 or epochs < 1:
        raise ValueError(f"batch_size and epochs must be >= 1 (got {batch_size}, {epochs})")
    rows = {ALIGN: [to_sharegpt(ex, ALIGN) for ex in align], REASON: [to_sharegpt(ex, REASON) for ex in reason]}
    if not rows[ALIGN] and not rows[REASON]:
        raise ValueError("no SFT examples to emit")
    cutoff: dict[str, dict] | None = None
    if tokenizer is not None and cutoff_len is not None:
        cutoff = {}
        for kind in (ALIGN, REASON):
            rows[kind], cutoff[kind] = fit_to_cutoff(rows[kind], tokenizer, int(cutoff_len), template)
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
    write_json(dataset_dir / "dataset_info.json", {DATASET_NAME: DATASET_INFO})
    summary = {
        "dataset": DATASET_NAME, "dataset_dir": str(dataset_dir), "file": str(dataset_dir / DATA_FILE),
        "batch_size": batch_size, "epochs": epochs, "gamma": gamma, "seed": seed, "length_grouped": length_grouped,
        "n_align_examples": len(rows[ALIGN]), "n_reason_examples": len(rows[REASON]),
        "n_align_targets": sum(map(n_targets, rows[ALIGN])), "n_reason_targets": sum(map(n_targets, rows[REASON])),
        "n_align_batches": n_batches[ALIGN], "n_reason_batches": n_batches[REASON],
        "padded_per_epoch": {k: n_batches[k] * batch_size - len(rows[k]) for k in rows},
        "steps_per_epoch": n_batches[ALIGN] + n_batches[REASON], "num_steps": len(steps), "num_rows": len(out_rows),
        "schedule": str(dataset_dir / "schedule.json"), "plot": str(dataset_dir / "curriculum.png"),
    }
    if cutoff is not None:
        summary["cutoff"] = cutoff
    write_json(dataset_dir / "schedule.json", {**summary, "steps": steps}, indent=None)
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
        "cutoff_len": cutoff_len, "mask_history": False, "overwrite_cache": True, "packing": False,
        "streaming": False,
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
    ("mask_history", lambda v: not v, "drops the loss on every turn but the last of multi-turn (sequence) rows"),
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
        raise LlamaFactoryArgsError("SFT arguments would break the curriculum order or drop supervised turns: "
                                    + "; ".join(problems))


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
    """Write ``args`` as a ``llamafactory-cli train`` YAML, keys in insertion order."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        yaml.safe_dump(dict(args), handle, sort_keys=False, allow_unicode=True)
    return path
