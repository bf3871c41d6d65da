"""Prompt construction for evaluation. Defaults are the shared student prompts of :mod:`gream_pipeline.prompts`.

A prompt function maps the history's ID strings (oldest first) to either a list of chat messages (rendered with the
tokenizer's chat template, generation prompt added) or a plain string (used verbatim). The paper's Appendix C user
turn and system prompt are the defaults.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from gream_pipeline.prompts import REASON_SYSTEM, direct_messages, history_question, reason_messages

PAPER_SYSTEM_PROMPT = REASON_SYSTEM

PromptFn = Callable[[list[str]], Any]


user_turn = history_question  # paper Appendix C user turn
default_direct_prompt = direct_messages  # the exact prompts the SFT data uses (gream_pipeline.prompts)
default_reason_prompt = reason_messages


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
    string verbatim; `response_prefix` is appended after the generation prompt."""
    if isinstance(prompt, str):
        text = prompt
    else:
        messages = list(prompt)
        if system_prompt is not None and not any(m.get("role") == "system" for m in messages):
            messages = [{"role": "system", "content": system_prompt}] + messages
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text + response_prefix, add_special_tokens=False)["input_ids"]


def system_prompt_value(value: str | None) -> str | None:
    return PAPER_SYSTEM_PROMPT if value == "paper" else value
