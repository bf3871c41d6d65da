"""``SynthConfig``: every knob of the synth stage (endpoint, concurrency, retries, budget, jobs, prompts, limits).

The API key itself is never part of the config: only the *name* of the environment variable holding it
(``api_key_env``). Offline mode (the deterministic template synthesizer) is used when ``base_url`` is empty, or when
``offline`` is forced to true.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .prompts import ENRICH_PROMPT_VERSION, REASON_PROMPT_VERSION
from .validate import Limits

JOBS = ("enrich", "reason")


@dataclass
class SynthConfig:
    # endpoint (any OpenAI-compatible server: OpenAI, vLLM, SGLang)
    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # name of the env var; a dummy key is used when it is unset
    offline: bool | None = None  # None: offline iff base_url is empty
    # request parameters (None: not sent)
    temperature: float | None = None
    max_output_tokens: int | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    # transport
    concurrency: int = 8
    timeout: float = 120.0  # seconds per request
    max_retries: int = 6  # per request: timeouts, connection errors, 408/409/429/5xx, malformed bodies
    backoff_base: float = 1.0  # seconds; exponential with jitter, capped at backoff_max
    backoff_max: float = 60.0  # also caps Retry-After
    max_invalid_retries: int = 2  # extra completions after an output fails validation, then rejected
    # budget (None: unlimited); checked before each request, so in-flight requests may overshoot by < concurrency
    max_requests: int | None = None
    max_tokens: int | None = None
    price_prompt_per_mtok: float = 0.0  # USD per 1M tokens, for the running cost estimate only
    price_completion_per_mtok: float = 0.0
    # jobs
    jobs: tuple[str, ...] = ("enrich", "reason")
    max_users: int | None = None  # None: every training user (one sample each: the user's last training example)
    max_items: int | None = None  # None: every item with some text
    reason_prompt_version: str = REASON_PROMPT_VERSION
    enrich_prompt_version: str = ENRICH_PROMPT_VERSION
    desc_chars: int = 200  # description characters per item in reasoning prompts
    # validation limits
    max_reason_chars: int = 8000
    min_step_chars: int = 20
    max_step_chars: int = 3000
    min_enrich_chars: int = 40
    max_enrich_chars: int = 2000
    # storage / UI
    store_name: str = "store.jsonl"  # inside out_dir, unless store_path is set
    store_path: str = ""  # a store outside out_dir (e.g. a persistent cache when out_dir is a temp stage dir)
    fsync: bool = True  # fsync each LLM record (offline runs sync in batches of sync_every)
    sync_every: int = 1000
    progress: bool = True

    def __post_init__(self) -> None:
        self.jobs = tuple(self.jobs)
        unknown = set(self.jobs) - set(JOBS)
        if unknown:
            raise ValueError(f"unknown synth jobs {sorted(unknown)}; known: {JOBS}")
        if self.offline is False and not self.base_url:
            raise ValueError("offline=false needs a base_url")
        if not self.is_offline and not self.model:
            raise ValueError("an endpoint (base_url) needs a model name")
        if self.concurrency < 1 or self.max_retries < 0 or self.max_invalid_retries < 0:
            raise ValueError("concurrency must be >= 1 and retry counts >= 0")

    @property
    def is_offline(self) -> bool:
        return bool(self.offline) or not self.base_url

    @property
    def source(self) -> str:
        """Label stored with every record: ``template`` offline, ``llm:<model>`` otherwise."""
        return "template" if self.is_offline else f"llm:{self.model}"

    @property
    def limits(self) -> Limits:
        return Limits(max_chars=self.max_reason_chars, min_step_chars=self.min_step_chars,
                      max_step_chars=self.max_step_chars, min_enrich_chars=self.min_enrich_chars,
                      max_enrich_chars=self.max_enrich_chars)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SynthConfig":
        """Build from a plain mapping (e.g. a resolved Hydra node); unknown keys raise."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown SynthConfig keys {sorted(unknown)}")
        values = dict(values)
        if "extra_body" in values and values["extra_body"] is not None:
            values["extra_body"] = dict(values["extra_body"])
        if values.get("extra_body") is None:
            values.pop("extra_body", None)
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """JSON-safe view for manifests (contains no secret: the key is only referenced by env var name)."""
        out = dataclasses.asdict(self)
        out["jobs"] = list(self.jobs)
        out["mode"] = "offline" if self.is_offline else "online"
        return out
