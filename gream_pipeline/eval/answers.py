"""Parsing of the `<answer>…</answer>` ID in reasoning-mode outputs (paper Appendix C format).

`reward_fns.srpo.parse_answer(text) -> list[str] | None` is the project's parser (shared with the SRPO reward) and is
used when importable; `local_parse_answer` is a fallback with the same contract.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# `<a_12>` (CONVENTIONS.md) and the paper's `<|a_12|>` spelling.
_TOKEN_RE = re.compile(r"<\|?([a-z])_(\d+)\|?>")


def local_parse_answer(text: str) -> list[str] | None:
    """ID tokens inside the last `<answer>…</answer>`, or None when missing or not made only of ID tokens.

    Whitespace between tokens is ignored; tokens are normalised to `<x_N>`; levels must be a, b, c, … in order.
    """
    blocks = _ANSWER_RE.findall(text)
    if not blocks:
        return None
    body = re.sub(r"\s+", "", blocks[-1])
    tokens = _TOKEN_RE.findall(body)
    if not tokens or "".join(f"<{a}_{n}>" for a, n in tokens) != _TOKEN_RE.sub(
            lambda m: f"<{m.group(1)}_{m.group(2)}>", body):
        return None
    if [a for a, _ in tokens] != [chr(ord("a") + i) for i in range(len(tokens))]:
        return None
    return [f"<{a}_{int(n)}>" for a, n in tokens]


def get_parser() -> tuple[Callable[[str], list[str] | None], str]:
    """The answer parser to use and its origin ("reward_fns.srpo" or "local")."""
    try:
        from reward_fns.srpo import parse_answer  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - absent or broken module: fall back
        return local_parse_answer, "local"
    return parse_answer, "reward_fns.srpo"
