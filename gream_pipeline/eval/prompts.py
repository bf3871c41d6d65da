"""Prompt construction for evaluation. Defaults are the shared student prompts of :mod:`gream_pipeline.prompts`.

A prompt function maps the history's ID strings (oldest first) to either a list of chat messages (rendered with the
tokenizer's chat template, generation prompt added) or a plain string (used verbatim). The direct-mode default is
the default SFT row format's query (``sequence``: the history as alternating ``next`` / ID turns, then ``next``);
a checkpoint trained with ``sft.seqrec_format=per_target`` needs ``direct_prompt_fn =
gream_pipeline.prompts.DIRECT_PROMPT_FNS["per_target"]`` (or :func:`direct_prompt_for`). The reasoning-mode
default is the paper's Appendix C system prompt and user turn.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from gream_pipeline.prompts import (DEFAULT_SEQREC_FORMAT, DIRECT_PROMPT_FNS, REASON_SYSTEM, direct_prompt_fn,
                                    history_question, reason_messages)

PAPER_SYSTEM_PROMPT = REASON_SYSTEM

PromptFn = Callable[[list[str]], Any]


user_turn = history_question  # paper Appendix C user turn
default_direct_prompt = direct_prompt_fn(DEFAULT_SEQREC_FORMAT)  # the exact prompts the SFT data uses
default_reason_prompt = reason_messages


def direct_prompt_for(seqrec_format: str) -> str:
    """``EvalConfig.direct_prompt_fn`` for a checkpoint trained with ``sft.seqrec_format`` (a "module:function"
    string, so it also travels to Ray workers)."""
    direct_prompt_fn(seqrec_format)  # validates the name
    return DIRECT_PROMPT_FNS[seqrec_format]


def resolve_prompt_fn(spec: PromptFn | str | None, default: PromptFn) -> PromptFn:
    """A callable, a "package.module:function" string, or None (→ default)."""
    if spec is None:
        return default
    if callable(spec):
        return spec
    module, _, attr = str(spec).partition(":")
    if not attr:
        raise ValueError(f"prompt function must be 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def render(tokenizer, prompt: Any, system_prompt: str | None = None, response_prefix: str = "") -> list[int]:
    """Token ids of a prompt: messages through the chat template (system prompt prepended unless present), or a plain
    string verbatim; a final assistant message is continued (rendered after the generation prompt, unclosed);
    `response_prefix` is appended after the generation prompt."""
    if isinstance(prompt, str):
        text = prompt
    else:
        messages = list(prompt)
        if system_prompt is not None and not any(m.get("role") == "system" for m in messages):
            messages = [{"role": "system", "content": system_prompt}] + messages
        continued = messages[-1]["content"] if messages and messages[-1].get("role") == "assistant" else None
        if continued is not None:  # an assistant turn to continue: the generation prompt, then its text
            messages = messages[:-1]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + (continued or "")
    return tokenizer(text + response_prefix, add_special_tokens=False)["input_ids"]


def system_prompt_value(value: str | None) -> str | None:
    return PAPER_SYSTEM_PROMPT if value == "paper" else value
