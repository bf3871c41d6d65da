"""Validate the composed config before any stage runs: one line naming the key, its value and what is allowed.

:data:`RULES` maps every user-settable key of ``recipes/config.yaml`` (and of the config groups) to a rule: a type
(integer, number, boolean, string, list, mapping), a range and, for enumerations, the allowed values. It holds no
defaults (their one home is ``recipes/config.yaml``); a key without a rule is not checked, and a rule whose key is
absent from the config (e.g. ``dataset.path`` of a raw-Amazon dataset) is skipped. :data:`RELATIONS` check values
against each other (``index.codebook_sizes`` vs ``index.levels``, ``eval.top_k`` vs ``eval.ks``, …). Values that are
legal but unwise (a codebook of size 1, fewer reasoning samples than the largest K) are logged as warnings with their
consequence. Relations that depend on the data (codebook size vs number of items) are checked by the index stage.

Missing mandatory values (``???``) are reported first, in one line naming each key. Files named by the config are
checked only when the stage that reads them runs (``index.embedder_model`` for ``index``, ``eval.checkpoint`` for
``eval``); the files of the dataset itself are checked by the data stage.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue, OmegaConfBaseException

from data_synth.offline import STYLES
from gream_pipeline.prompts import SEQREC_FORMATS
from gream_pipeline.errors import GreamError

log = logging.getLogger("gream")


class ConfigError(GreamError):
    """An invalid config value; the message names the key, the value and what is allowed."""


_ABSENT = object()


def show(value: Any) -> str:
    """A config value as a user would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if re.fullmatch(r"[^\s'\"]+", value) else repr(value)
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


def _null(allowed: str, nullable: bool) -> str:
    return f"{allowed} or null" if nullable else allowed


class Rule:
    """``check(value)`` returns the problem (None when the value is allowed); ``allowed()`` describes the values."""

    nullable = False

    def allowed(self) -> str:
        raise NotImplementedError

    def check(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else "null is not allowed"
        return self._check(value)

    def _check(self, value: Any) -> str | None:
        raise NotImplementedError


def _range(lo, hi, lo_open=False, hi_open=False) -> str:
    if lo is not None and hi is not None and not lo_open and not hi_open:
        return f"in {lo}..{hi}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    return " and ".join(parts)


def _number(value: Any) -> float | int | str:
    """The numeric value of an int/float/numeric string, or a problem string."""
    if isinstance(value, bool):
        return "a boolean, not a number"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return "not a number"
    return f"a {type(value).__name__}, not a number"


@dataclass(frozen=True)
class Int(Rule):
    lo: int | None = None
    hi: int | None = None
    nullable: bool = False
    also: tuple[int, ...] = ()  # allowed outside the range (e.g. -1: "unset" for TRL's max_steps)

    def allowed(self) -> str:
        text = " ".join(p for p in ("an integer", _range(self.lo, self.hi)) if p)
        if self.also:
            text += f" (or {', '.join(map(str, self.also))})"
        return _null(text, self.nullable)

    def _check(self, value: Any) -> str | None:
        number = _number(value)
        if isinstance(number, str):
            return number if number != "not a number" else "not an integer"
        if not math.isfinite(number):
            return "not a finite number"
        if isinstance(number, float) and not number.is_integer():
            return "not a whole number (fractional values are not rounded)"
        number = int(number)
        if number in self.also:
            return None
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            return "out of range"
        return None


@dataclass(frozen=True)
class Float(Rule):
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    nullable: bool = False

    def allowed(self) -> str:
        return _null(" ".join(p for p in ("a number", _range(self.lo, self.hi, self.lo_open, self.hi_open)) if p),
                     self.nullable)

    def _check(self, value: Any) -> str | None:
        number = _number(value)
        if isinstance(number, str):
            return number
        if not math.isfinite(number):
            return "not a finite number"
        if self.lo is not None and (number < self.lo or (self.lo_open and number == self.lo)):
            return "out of range"
        if self.hi is not None and (number > self.hi or (self.hi_open and number == self.hi)):
            return "out of range"
        return None


@dataclass(frozen=True)
class Bool(Rule):
    nullable: bool = False
    auto: bool = False  # also the string "auto" (resolved per host by gream_pipeline.precision)

    def allowed(self) -> str:
        return _null("true, false or auto" if self.auto else "true or false", self.nullable)

    def _check(self, value: Any) -> str | None:
        return None if isinstance(value, bool) or (self.auto and value == "auto") else "not a boolean"


@dataclass(frozen=True)
class Str(Rule):
    nullable: bool = False
    empty: bool = True                 # whether "" is allowed
    numbers: bool = False              # whether a number is accepted as its text (names)
    pattern: str | None = None         # regular expression the text must match
    what: str = "a string"             # description of the allowed values

    def allowed(self) -> str:
        text = self.what if self.empty or self.what != "a string" else "a non-empty string"
        return _null(text, self.nullable)

    def _check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float) if self.numbers else str):
            return f"a {type(value).__name__}, not a string"
        text = str(value)
        if not text:
            return None if self.empty else "empty"
        if not text.strip() and not self.empty:
            return "empty (only whitespace)"
        if self.pattern and not re.fullmatch(self.pattern, text):
            return "not allowed"
        return None


@dataclass(frozen=True)
class Choice(Rule):
    options: tuple[str, ...] | Callable[[], Sequence[str]] = ()
    nullable: bool = False

    def values(self) -> list[str]:
        return list(self.options() if callable(self.options) else self.options)

    def allowed(self) -> str:
        return _null(" | ".join(self.values()), self.nullable)

    def _check(self, value: Any) -> str | None:
        return None if isinstance(value, str) and value in self.values() else "not one of the allowed values"


@dataclass(frozen=True)
class List(Rule):
    item: Rule | None = None
    choices: tuple[str, ...] = ()      # a subset of these (each at most once)
    empty: bool = False
    nullable: bool = False

    def allowed(self) -> str:
        if self.choices:
            text = f"a {'' if self.empty else 'non-empty '}list of {' | '.join(self.choices)}"
        else:
            text = f"a {'' if self.empty else 'non-empty '}list" + (f" of {self.item.allowed()}s" if self.item else "")
        return _null(text, self.nullable)

    def _check(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return f"a {type(value).__name__}, not a list"
        if not value and not self.empty:
            return "empty"
        for i, element in enumerate(value):
            if self.choices and (not isinstance(element, str) or element not in self.choices):
                return f"element {i} ({show(element)}) is not one of {' | '.join(self.choices)}"
            if self.item is not None:
                problem = self.item.check(element)
                if problem:
                    return f"element {i} ({show(element)}) is {problem}"
        if self.choices and len(set(value)) != len(value):
            return "an element is repeated"
        return None


@dataclass(frozen=True)
class Mapping(Rule):
    nullable: bool = False

    def allowed(self) -> str:
        return _null("a mapping ({key: value, ...})", self.nullable)

    def _check(self, value: Any) -> str | None:
        return None if isinstance(value, dict) else f"a {type(value).__name__}, not a mapping"


@dataclass(frozen=True)
class StrOrList(Rule):
    def allowed(self) -> str:
        return "a string or a list of strings"

    def _check(self, value: Any) -> str | None:
        if isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            return None
        return "not a string or a list of strings"


def _stage_names() -> list[str]:
    from gream_pipeline import pipeline  # noqa: F401  (registers the stages)
    from gream_pipeline.stages import ORDER

    return ORDER + ["all"]


def _prompt_versions(kind: str) -> Callable[[], list[str]]:
    def versions() -> list[str]:
        from data_synth import prompts

        return sorted(getattr(prompts, f"{kind.upper()}_PROMPTS"))

    return versions


EMBEDDERS = ("sentence", "hf_causal_lm", "collaborative")
TEXT_EMBEDDERS = ("sentence", "hf_causal_lm")
TEXT_FIELDS = ("title", "brand", "categories", "description")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")
ENGINE_KINDS = ("hf", "transformers", "vllm", "vllm-cpu", "openai", "server", "sglang")
TORCH_DTYPES = ("auto", "float32", "bfloat16", "float16")
MODES = ("direct", "reason")
SPLITS = ("test", "valid")
#: A path component that stays inside its parent folder: no ``/`` or ``\\``, no ``..``, no control characters.
SAFE_NAME = r"(?!\.+$)(?!.*\.\.)[^/\\\x00-\x1f\x7f]*[^/\\\x00-\x1f\x7f\s]"
PROMPT_FN = Str(nullable=True, empty=False, pattern=r"[A-Za-z_][\w.]*:[A-Za-z_]\w*",
                what="a 'module:function' string")
POS = Int(1)
COUNT = Int(0)
CAP = Int(1, nullable=True)
TEMPERATURE = Float(0)
TOP_P = Float(0, 1, lo_open=True)


def _decoding(prefix: str) -> dict[str, Rule]:
    """Decode settings shared by ``eval`` and ``rl.validate`` (gream_pipeline.eval.config.EvalConfig)."""
    rules: dict[str, Rule] = {
        "modes": List(choices=MODES), "ks": List(POS), "num_beams": POS, "top_k": POS, "n_samples": POS,
        "temperature": TEMPERATURE, "top_p": TOP_P, "max_new_tokens": POS, "batch_size": POS,
        "constrain_answer": Bool(), "think_budget": POS, "ban_early_end": Bool(),
        "stop": List(Str(), empty=True),
        "seed": Int(0), "max_users": CAP, "direct_prompt_fn": PROMPT_FN, "reason_prompt_fn": PROMPT_FN,
        "direct_system_prompt": Str(nullable=True), "reason_system_prompt": Str(nullable=True),
        "direct_response_prefix": Str(), "reason_response_prefix": Str(), "save_texts": Bool(), "plots": Bool(),
        "progress": Bool(),
        "engine.kind": Choice(ENGINE_KINDS), "engine.dtype": Choice(TORCH_DTYPES),
        "engine.device": Str(empty=False, pattern=r"cpu|mps|cuda(:\d+)?", what="cpu | cuda | cuda:N | mps"),
        "engine.num_threads": CAP, "engine.tokenizer_dir": Str(nullable=True), "engine.base_url": Str(),
        "engine.api_key": Str(), "engine.served_model": Str(nullable=True, numbers=True),
        "engine.flavor": Choice(("vllm", "sglang")), "engine.max_logprobs": POS, "engine.concurrency": POS,
        "engine.timeout_s": Float(0, lo_open=True), "engine.vllm_kwargs": Mapping(),
        "ray.enabled": Bool(), "ray.address": Str(nullable=True), "ray.num_workers": POS,
        "ray.num_cpus_per_worker": Float(0), "ray.num_gpus_per_worker": Float(0), "ray.env_vars": Mapping(),
    }
    return {f"{prefix}.{key}": rule for key, rule in rules.items()}


#: key → rule for every user-settable value (see the module docstring); the defaults live in recipes/config.yaml.
RULES: dict[str, Rule] = {
    "stage": Choice(_stage_names),
    "force": Bool(), "debug": Bool(), "seed": Int(0, 2**32 - 1),
    "runs_dir": Str(empty=False),
    "run_name": Str(empty=False, numbers=True, pattern=SAFE_NAME,
                    what="a folder name inside runs_dir (no '/', '\\', '..' or control characters)"),
    "run_dir": Str(empty=False),
    "experiment.name": Str(empty=False, numbers=True), "experiment.description": Str(),
    # dataset group
    "dataset.name": Str(empty=False, numbers=True), "dataset.format": Choice(("lcrec", "amazon_raw")),
    "dataset.path": Str(empty=False, what="an LC-Rec folder"),
    "dataset.file_prefix": Str(empty=False, numbers=True, pattern=r"[^/\\]+", what="a file name prefix (no '/')"),
    "dataset.reviews": Str(empty=False, what="a reviews file (JSON lines, optionally .gz)"),
    "dataset.meta": Str(empty=False, what="a metadata file (JSON or Python-literal lines, optionally .gz)"),
    "dataset.k_core": POS, "dataset.max_reviews_per_item": COUNT,
    "dataset.default_embedder": Choice(EMBEDDERS),
    # model group
    "model.name": Str(empty=False, numbers=True), "model.source": Choice(("scratch", "gguf_package", "local")),
    "model.path": Str(nullable=True), "model.arch": Mapping(),
    **{f"model.arch.{k}": POS for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "intermediate_size", "vocab_size",
                                        "max_position_embeddings")},
    "model.arch.attention_dropout": Float(0, 1, hi_open=True),
    "data.max_history": POS, "data.min_items_per_user": Int(2),
    "index.embedder": Choice(EMBEDDERS), "index.embedder_model": Str(nullable=True),
    "index.text_source": Choice(("original", "enriched")), "index.text_fields": List(choices=TEXT_FIELDS),
    "index.use_reviews": Bool(), "index.max_chars": POS, "index.max_length": POS, "index.batch_size": POS,
    "index.dtype": Choice(("auto", "bf16", "fp32")), "index.normalize": Bool(), "index.levels": Int(1, 25),
    "index.codebook_size": POS, "index.codebook_sizes": List(POS, nullable=True), "index.kmeans_iters": POS,
    "index.threads": POS,
    "index.conflict_slot": Bool(), "index.collaborative.dim": POS, "index.collaborative.window": POS,
    # synth (data_synth.config.SynthConfig)
    "synth.base_url": Str(pattern=r"https?://\S+", what="'' (offline) or an http(s):// URL"),
    "synth.model": Str(numbers=True),
    "synth.api_key_env": Str(empty=False, pattern=r"[A-Za-z_][A-Za-z0-9_]*", what="an environment variable name"),
    "synth.offline": Bool(nullable=True), "synth.offline_style": Choice(tuple(STYLES)),
    "synth.temperature": Float(0, nullable=True),
    "synth.max_output_tokens": CAP, "synth.extra_body": Mapping(nullable=True), "synth.concurrency": POS,
    "synth.timeout": Float(0, lo_open=True), "synth.max_retries": COUNT, "synth.max_invalid_retries": COUNT,
    "synth.max_requests": CAP, "synth.max_tokens": CAP, "synth.price_prompt_per_mtok": Float(0),
    "synth.price_completion_per_mtok": Float(0), "synth.jobs": List(choices=("enrich", "reason"), empty=True),
    "synth.max_users": CAP, "synth.max_items": CAP,
    "synth.reason_prompt_version": Choice(_prompt_versions("reason")),
    "synth.enrich_prompt_version": Choice(_prompt_versions("enrich")),
    "synth.desc_chars": COUNT, "synth.max_reason_chars": POS, "synth.min_step_chars": COUNT,
    "synth.max_step_chars": POS, "synth.min_enrich_chars": COUNT, "synth.max_enrich_chars": POS,
    "synth.store_name": Str(empty=False, pattern=r"[^/\\]+", what="a file name (no '/')"),
    "synth.store_path": Str(nullable=True), "synth.fsync": Bool(), "synth.sync_every": POS, "synth.progress": Bool(),
    # sft
    "sft.launch": Choice(("run", "emit")), "sft.epochs": POS, "sft.gamma": Float(0), "sft.per_device_batch": POS,
    "sft.grad_accum": POS, "sft.world_size": POS, "sft.lr": Float(0, lo_open=True),
    "sft.lr_scheduler_type": Choice(SCHEDULERS), "sft.warmup_ratio": Float(0, 1, hi_open=True),
    "sft.cutoff_len": POS, "sft.bf16": Bool(auto=True), "sft.gradient_checkpointing": Bool(),
    "sft.length_grouped_batches": Bool(), "sft.time_budget_min": Float(0, lo_open=True, nullable=True),
    "sft.use_cpu": Bool(), "sft.finetuning_type": Choice(("full", "freeze", "lora", "oft")),
    "sft.logging_steps": POS, "sft.checkpoint_every_epoch": Bool(),
    "sft.seqrec_format": Choice(SEQREC_FORMATS),
    "sft.max_seqrec": Int(0, nullable=True), "sft.max_item_tasks": Int(0, nullable=True),
    "sft.max_preference": Int(0, nullable=True), "sft.max_reason": Int(0, nullable=True),
    "sft.extra": Mapping(nullable=True),
    # rl
    "rl.backend": Choice(("trl", "verl")), "rl.mode": Choice(MODES), "rl.max_prompts": POS,
    "rl.compare_grpo": Bool(), "rl.validate.users": COUNT, "rl.validate.reason_users": COUNT,
    **_decoding("rl.validate"),
    "rl.trl.srpo_k": POS, "rl.trl.reward_beta": Float(0, lo_open=True), "rl.trl.exact_tol": Float(0, 1, hi_open=True),
    "rl.trl.adv_eps": Float(0, lo_open=True), "rl.trl.torch_num_threads": CAP,
    "rl.trl.stop_after_empty_batches": CAP, "rl.trl.max_steps": Int(1, also=(-1,)),
    "rl.trl.learning_rate": Float(0, lo_open=True), "rl.trl.num_generations": Int(2),
    "rl.trl.per_device_train_batch_size": POS, "rl.trl.temperature": Float(0, lo_open=True), "rl.trl.top_p": TOP_P,
    "rl.trl.beta": Float(0), "rl.trl.weight_decay": Float(0),
    "rl.trl.loss_type": Choice(("grpo", "bnpo", "dr_grpo", "dapo")),
    "rl.trl.max_completion_length": POS, "rl.trl.max_prompt_length": CAP,
    "rl.trl.num_train_epochs": Float(0, lo_open=True),
    "rl.trl.gradient_checkpointing": Bool(), "rl.trl.bf16": Bool(), "rl.trl.disable_dropout": Bool(),
    "rl.trl.logging_steps": Float(0, lo_open=True), "rl.trl.save_strategy": Choice(("no", "steps", "epoch", "best")),
    "rl.trl.report_to": StrOrList(), "rl.trl.dataloader_pin_memory": Bool(), "rl.trl.use_vllm": Bool(),
    "rl.trl.gradient_accumulation_steps": POS, "rl.trl.steps_per_generation": CAP,
    "rl.verl_max_prompts": CAP,
    "rl.verl_overrides": List(Str(pattern=r"[+~]?[\w.\[\]-]+=.*", what="a Hydra override key=value"), empty=True),
    # eval (gream_pipeline.eval.config.EvalConfig + the keys the eval stage reads)
    "eval.checkpoint": Str(empty=False, what="auto | sft | rl | a local HF model folder"),
    "eval.splits": List(choices=SPLITS), "eval.reason_max_users": CAP,
    **_decoding("eval"),
}

#: Sections (config nodes holding keys of RULES): each must be a mapping.
SECTIONS = sorted({key.rsplit(".", n)[0] for key in RULES for n in range(1, key.count(".") + 1)}, key=len)

#: Hints shown for a missing mandatory value (``???``).
MISSING_HINTS = {
    "stage": "choose one of {stages}, e.g. `gream stage=data`",
    "dataset.path": "the LC-Rec folder holding <name>.inter.json, e.g. dataset.path=/data/Beauty",
    "dataset.reviews": "the raw reviews file, e.g. dataset.reviews=/raw/reviews_Beauty_5.json.gz",
    "dataset.meta": "the raw metadata file, e.g. dataset.meta=/raw/meta_Beauty.json.gz",
    "model.path": "a local HF model folder, e.g. model.path=/models/Qwen3-4B-Instruct-2507",
}
#: Config sections whose missing values matter only to some stages (``model.path`` of the GPU recipe is not needed
#: to run ``stage=data``).
NEEDED_BY = {"model": {"sft", "rl", "eval", "all"}}


class Values:
    """Resolved config values by dotted key; records the keys whose own rule failed (relations skip them)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.bad: set[str] = set()

    def get(self, key: str) -> Any:
        """The resolved value; ``_ABSENT`` for an absent key or a missing value (``???``, reported before)."""
        try:
            value = OmegaConf.select(self.cfg, key, default=_ABSENT, throw_on_missing=True)
        except (MissingMandatoryValue, InterpolationToMissingValueError):
            return _ABSENT
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        return value

    def ok(self, *keys: str) -> bool:
        return not any(k in self.bad for k in keys) and all(self.get(k) is not _ABSENT for k in keys)


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, parent node, key in parent) for every leaf, interpolations unresolved."""
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    for key in keys:
        full = f"{prefix}[{key}]" if isinstance(node, ListConfig) else (f"{prefix}.{key}" if prefix else str(key))
        if OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key):
            yield full, node, key
            continue
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
            yield from _leaves(child, full)
        else:
            yield full, node, key


def _missing(cfg: DictConfig) -> list[str]:
    try:
        stage = None if "stage" not in cfg or OmegaConf.is_missing(cfg, "stage") else str(cfg.stage)
    except OmegaConfBaseException:
        stage = None
    out = []
    for key, node, sub in _leaves(cfg):
        if not OmegaConf.is_missing(node, sub):
            continue
        needed = NEEDED_BY.get(key.split(".")[0])
        if needed is not None and stage is not None and stage not in needed:
            continue
        hint = MISSING_HINTS.get(key, "set it on the command line: " + key + "=...")
        if key == "stage":
            hint = hint.format(stages=" | ".join(_stage_names()))
        out.append(f"{key} ({hint})")
    return out


# --- relations -------------------------------------------------------------------------------------------------


def _codebooks(v: Values, errors: list[str], warnings: list[str]) -> None:
    if not v.ok("index.levels", "index.codebook_size", "index.codebook_sizes"):
        return
    levels, sizes = int(v.get("index.levels")), v.get("index.codebook_sizes")
    if sizes:
        if len(sizes) != levels:
            errors.append(f"index.codebook_sizes={show(sizes)} has {len(sizes)} entries but index.levels={levels}: "
                          f"give one size per level (or set index.levels={len(sizes)})")
            return
        named = "index.codebook_sizes"
    else:
        sizes, named = [v.get("index.codebook_size")] * levels, "index.codebook_size"
    if any(int(s) == 1 for s in sizes):
        warnings.append(f"{named}={show(v.get(named))}: a level with 1 code gives every item the same token there; "
                        f"items that share all other codes are told apart by the conflict slot only "
                        f"(<e_0>, <e_1>, …)")


def _text_source(v: Values, errors: list[str], warnings: list[str]) -> None:
    """Checked when the index stage runs (the enrich stage may run on its own whatever the embedder)."""
    if _runs(v.get("stage"), "index") and v.ok("index.text_source", "index.embedder") \
            and v.get("index.text_source") == "enriched" and v.get("index.embedder") not in TEXT_EMBEDDERS:
        errors.append(f"index.text_source=enriched needs a text embedder: index.embedder={v.get('index.embedder')} "
                      f"does not read item texts; allowed: index.embedder={' | '.join(TEXT_EMBEDDERS)}")


def _ranking(prefix: str) -> Callable[[Values, list[str], list[str]], None]:
    def check(v: Values, errors: list[str], warnings: list[str]) -> None:
        ks, top_k, beams = f"{prefix}.ks", f"{prefix}.top_k", f"{prefix}.num_beams"
        if v.ok(ks, top_k) and int(v.get(top_k)) < max(int(k) for k in v.get(ks)):
            errors.append(f"{top_k}={v.get(top_k)} is smaller than max({ks})={max(int(k) for k in v.get(ks))}: "
                          f"Recall/NDCG@K needs K ranked IDs; allowed: {top_k} >= {max(int(k) for k in v.get(ks))}")
        if v.ok(top_k, beams) and int(v.get(beams)) < int(v.get(top_k)):
            errors.append(f"{beams}={v.get(beams)} is smaller than {top_k}={v.get(top_k)}: the beam search keeps "
                          f"{beams} IDs; allowed: {beams} >= {top_k}")
        samples, modes = f"{prefix}.n_samples", f"{prefix}.modes"
        if v.ok(ks, samples, modes) and "reason" in v.get(modes) and \
                int(v.get(samples)) < max(int(k) for k in v.get(ks)):
            warnings.append(f"{samples}={v.get(samples)} is smaller than max({ks})={max(int(k) for k in v.get(ks))}: "
                            f"pass@K for K > {v.get(samples)} is not computed (null in metrics.json)")
        kind, url = f"{prefix}.engine.kind", f"{prefix}.engine.base_url"
        if v.ok(kind, url) and v.get(kind) in ("openai", "server", "sglang") and \
                not re.fullmatch(r"https?://\S+", str(v.get(url))):
            errors.append(f"{url}={show(v.get(url))}: not an http(s):// URL (needed by {kind}={v.get(kind)}); "
                          f"allowed: e.g. http://127.0.0.1:8000/v1")
    return check


def _synth(v: Values, errors: list[str], warnings: list[str]) -> None:
    for lo, hi in (("min_step_chars", "max_step_chars"), ("min_enrich_chars", "max_enrich_chars")):
        lo, hi = f"synth.{lo}", f"synth.{hi}"
        if v.ok(lo, hi) and int(v.get(lo)) > int(v.get(hi)):
            errors.append(f"{lo}={v.get(lo)} is larger than {hi}={v.get(hi)}: no output could pass validation; "
                          f"allowed: {lo} <= {hi}")
    if v.ok("synth.offline", "synth.base_url", "synth.model"):
        offline, url, model = v.get("synth.offline"), v.get("synth.base_url"), v.get("synth.model")
        if offline is False and not url:
            errors.append("synth.offline=false needs synth.base_url (an OpenAI-compatible endpoint); allowed: set "
                          "synth.base_url=http://host:port/v1, or synth.offline=null|true for the offline templates")
        elif url and not offline and not str(model).strip():
            errors.append(f"synth.base_url={url} needs synth.model (the model name on that server); allowed: "
                          f"synth.model=<name>, or synth.base_url='' for the offline templates")


def _sft(v: Values, errors: list[str], warnings: list[str]) -> None:
    if v.ok("sft.time_budget_min", "sft.world_size") and v.get("sft.time_budget_min") is not None \
            and int(v.get("sft.world_size")) > 1:
        errors.append(f"sft.time_budget_min={v.get('sft.time_budget_min')} needs sft.world_size=1 (it runs "
                      f"LLaMA-Factory in one process); sft.world_size={v.get('sft.world_size')}: set "
                      f"sft.time_budget_min=null")


def _rl(v: Values, errors: list[str], warnings: list[str]) -> None:
    batch, gens = "rl.trl.per_device_train_batch_size", "rl.trl.num_generations"
    if not v.ok(batch, gens):
        return
    steps = 1
    for key in ("rl.trl.steps_per_generation", "rl.trl.gradient_accumulation_steps"):
        if v.ok(key) and v.get(key) is not None:
            steps = int(v.get(key))
            break
    rollouts, g = int(v.get(batch)) * steps, int(v.get(gens))
    if rollouts % g:
        errors.append(f"{batch}={v.get(batch)} (x {steps} step(s) per generation) is not a multiple of {gens}={g}: "
                      f"each step needs whole groups of {g} rollouts; allowed: a multiple of {g}, e.g. {g * 4}")


def _model(v: Values, errors: list[str], warnings: list[str]) -> None:
    stage = v.get("stage")
    if v.ok("model.source", "model.path") and v.get("model.source") == "local" and not v.get("model.path") \
            and stage in NEEDED_BY["model"]:
        errors.append("model.source=local needs model.path (a local HF model folder); allowed: "
                      "model.path=/models/<name>")


def _runs(stage: str, name: str) -> bool:
    return stage in (name, "all")


def _files(v: Values, errors: list[str], warnings: list[str]) -> None:
    """Files named by the config, checked when the stage that reads them runs."""
    stage = v.get("stage")
    if _runs(stage, "index") and v.ok("index.embedder", "index.embedder_model") \
            and v.get("index.embedder") in TEXT_EMBEDDERS:
        model = v.get("index.embedder_model") or ""
        if v.get("index.embedder") == "hf_causal_lm" and not model:
            errors.append("index.embedder=hf_causal_lm needs index.embedder_model; allowed: a local HF causal-LM "
                          "folder, e.g. index.embedder_model=/models/Qwen3-0.6B")
        elif model and not Path(model).is_dir():
            what = "does not exist" if not Path(model).exists() else "is not a folder"
            errors.append(f"index.embedder_model={show(model)}: {what}; allowed: a local model folder "
                          f"(or '' for the bundled all-MiniLM-L6-v2 with index.embedder=sentence)")
        elif model and not (Path(model) / "config.json").is_file() and not (Path(model) / "modules.json").is_file():
            errors.append(f"index.embedder_model={show(model)}: no config.json in that folder; allowed: a local "
                          f"HF / sentence-transformers model folder")
    if _runs(stage, "eval") and v.ok("eval.checkpoint") and v.get("eval.checkpoint") not in ("auto", "sft", "rl"):
        errors.extend(_checkpoint_problems(v))


def _checkpoint_problems(v: Values) -> list[str]:
    path = Path(str(v.get("eval.checkpoint")))
    key = f"eval.checkpoint={show(str(path))}"
    allowed = "allowed: auto | sft | rl | a local HF model folder (config.json, weights and tokenizer files)"
    if not path.is_dir():
        return [f"{key}: {'does not exist' if not path.exists() else 'is not a folder'}; {allowed}"]
    if not (path / "config.json").is_file():
        return [f"{key}: no config.json in that folder (not a HF model folder); {allowed}"]
    tokenizer = v.get("eval.engine.tokenizer_dir") if v.ok("eval.engine.tokenizer_dir") else None
    tok_dir = Path(str(tokenizer)) if tokenizer else path
    tok_files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if not any((tok_dir / f).is_file() for f in tok_files):
        where = f"eval.engine.tokenizer_dir={show(str(tok_dir))}" if tokenizer else key
        return [f"{where}: no tokenizer files ({', '.join(tok_files)}); allowed: a folder saved with its tokenizer "
                f"(or eval.engine.tokenizer_dir=<folder with the tokenizer>)"]
    kind = v.get("eval.engine.kind") if v.ok("eval.engine.kind") else "hf"
    weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
    if kind in ("hf", "transformers", "vllm", "vllm-cpu") and not weights:
        return [f"{key}: no model weights (*.safetensors or pytorch_model*.bin) in that folder; {allowed}"]
    return []


RELATIONS: tuple[Callable[[Values, list[str], list[str]], None], ...] = (
    _codebooks, _text_source, _ranking("eval"), _ranking("rl.validate"), _synth, _sft, _rl, _model, _files)


def _describe_run_name(cfg: DictConfig, problem: str) -> str:
    if OmegaConf.is_interpolation(cfg, "run_name"):
        raw = cfg._get_node("run_name")._value()
        return f"{problem} (run_name is built as {raw}: set run_name=<name> or fix the values it is built from)"
    return problem


def check_config(cfg: DictConfig) -> list[str]:
    """Raise :class:`ConfigError` (one line naming every bad key) or return the warnings (also logged)."""
    missing = _missing(cfg)
    if missing:
        raise ConfigError(f"missing mandatory value{'s' if len(missing) > 1 else ''}: {'; '.join(missing)}")
    values = Values(cfg)
    errors: list[str] = []
    warnings: list[str] = []
    for section in SECTIONS:  # `index=3` would hide every index.* key from the rules
        value = values.get(section) if section not in values.bad else _ABSENT
        if value is not _ABSENT and not isinstance(value, dict):
            values.bad.update(k for k in RULES if k.startswith(section + "."))
            errors.append(f"{section}={show(value)}: a {type(value).__name__}, not a section; allowed: its keys, "
                          f"e.g. {next(k for k in RULES if k.startswith(section + '.'))}=...")
    for key, rule in RULES.items():
        if key in values.bad:
            continue
        try:
            value = values.get(key)
        except OmegaConfBaseException as err:
            values.bad.add(key)
            errors.append(f"{key}: cannot be resolved ({' '.join(str(err).split())})")
            continue
        if value is _ABSENT:
            continue
        problem = rule.check(value)
        if problem:
            values.bad.add(key)
            text = f"{key}={show(value)}: {problem}; allowed: {rule.allowed()}"
            errors.append(_describe_run_name(cfg, text) if key == "run_name" else text)
    if "stage" not in values.bad:
        for relation in RELATIONS:
            relation(values, errors, warnings)
    if errors:
        raise ConfigError("; ".join(errors))
    for warning in warnings:
        log.warning("%s", warning)
    return warnings
