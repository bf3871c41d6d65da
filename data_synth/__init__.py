"""Synthetic data for GREAM (paper §4.1–4.2): item-description enrichment and reverse-reasoning samples.

Public API: ``run_synth(items, train_examples, index, out_dir, cfg) -> dict`` and ``SynthConfig``. Works against any
OpenAI-compatible endpoint (``cfg.base_url``), or offline with deterministic templates when no endpoint is set.
Module map: ``config`` (SynthConfig), ``prompts`` (versioned prompts), ``validate`` (output checks), ``store``
(crash-safe JSONL store), ``client`` (async OpenAI client, retries, budget), ``offline`` (templates), ``jobs``
(tasks), ``runner`` (run_synth). Test fixtures (a fault-injecting OpenAI-compatible
server, toy data) live in ``tests/fixtures/servers.py``.
"""

from .config import SynthConfig
from .prompts import ENRICH_PROMPT_VERSION, REASON_PROMPT_VERSION
from .runner import ENRICHED_FILE, REASONING_FILE, REJECTED_FILE, format_summary, run_synth

__all__ = ["SynthConfig", "run_synth", "format_summary", "REASON_PROMPT_VERSION", "ENRICH_PROMPT_VERSION",
           "REASONING_FILE", "ENRICHED_FILE", "REJECTED_FILE"]
