"""``SynthConfig``: every knob of the synth stage (endpoint, concurrency, retries, budget, jobs, prompts, limits).

The API key itself is never part of the config: only the *name* of the environment variable holding it
(``api_key_env``). Offline mode (the deterministic template synthesizer) is used when ``base_url`` is empty, or when
``offline`` is forced to true.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .offline import STYLES
from .validate import Limits

JOBS = ("enrich", "reason")
RECIPES = Path(os.environ.get("GREAM_RECIPES", Path(__file__).resolve().parents[1] / "recipes"))


def recipe_defaults(config: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``synth:`` section of the root recipe (default ``$GREAM_RECIPES/config.yaml``, else the repository's
    ``recipes/config.yaml``): a value for every ``SynthConfig`` field, for callers outside the Hydra pipeline."""
    from omegaconf import OmegaConf

    section = OmegaConf.load(Path(config) if config else RECIPES / "config.yaml").synth
    return OmegaConf.to_container(section, resolve=True)


@dataclass
class SynthConfig:
    """Every field is required; the defaults live in ``recipes/config.yaml`` (``synth:``, see ``recipe_defaults``)."""

    # endpoint (any OpenAI-compatible server: OpenAI, vLLM, SGLang)
    base_url: str
    model: str
    api_key_env: str  # name of the env var; a dummy key is used when it is unset
    offline: bool | None  # None: offline iff base_url is empty
    offline_style: str  # template style of the offline synthesizer: full | compact (data_synth.offline.STYLES)
    # request parameters (None: not sent)
    temperature: float | None
    max_output_tokens: int | None
    extra_body: dict[str, Any]
    # transport
    concurrency: int
    timeout: float  # seconds per HTTP attempt
    max_retries: int  # per completion: the SDK's transport retries plus retries of malformed bodies
    max_invalid_retries: int  # extra completions after an output fails validation, then rejected
    # budget (None: unlimited); checked before each request, so in-flight requests may overshoot by < concurrency
    max_requests: int | None
    max_tokens: int | None
    price_prompt_per_mtok: float  # USD per 1M tokens, for the running cost estimate only
    price_completion_per_mtok: float
    # jobs
    jobs: tuple[str, ...]
    max_users: int | None  # None: every training user (one sample each: the user's last training example)
    max_items: int | None  # None: every item with some text
    reason_prompt_version: str  # a key of data_synth.prompts' registries
    enrich_prompt_version: str
    desc_chars: int  # description characters per item in reasoning prompts
    # validation limits
    max_reason_chars: int
    min_step_chars: int
    max_step_chars: int
    min_enrich_chars: int
    max_enrich_chars: int
    # storage / UI
    store_name: str  # inside out_dir, unless store_path is set
    store_path: str  # a store outside out_dir (e.g. a persistent cache when out_dir is a temp stage dir)
    fsync: bool  # fsync each LLM record (offline runs sync in batches of sync_every)
    sync_every: int
    progress: bool

    def __post_init__(self) -> None:
        self.jobs = tuple(self.jobs)
        unknown = set(self.jobs) - set(JOBS)
        if unknown:
            raise ValueError(f"unknown synth jobs {sorted(unknown)}; known: {JOBS}")
        if self.offline is False and not self.base_url:
            raise ValueError("offline=false needs a base_url")
        if not self.is_offline and not self.model:
            raise ValueError("an endpoint (base_url) needs a model name")
        if self.offline_style not in STYLES:
            raise ValueError(f"unknown offline_style {self.offline_style!r}; known: {sorted(STYLES)}")
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
        """Build from a plain mapping holding every field (e.g. a resolved Hydra node); unknown or missing keys
        raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = set(values) - names, names - set(values)
        if unknown:
            raise ValueError(f"unknown SynthConfig keys {sorted(unknown)}")
        if missing:
            raise ValueError(f"missing SynthConfig keys {sorted(missing)}")
        values = dict(values)
        values["extra_body"] = dict(values["extra_body"] or {})
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """JSON-safe view for manifests (contains no secret: the key is only referenced by env var name)."""
        out = dataclasses.asdict(self)
        out["jobs"] = list(self.jobs)
        out["mode"] = "offline" if self.is_offline else "online"
        return out
