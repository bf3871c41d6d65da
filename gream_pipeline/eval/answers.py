"""Parsing of the `<answer>…</answer>` ID in reasoning-mode outputs (paper Appendix C format).

The rule is :func:`gream_pipeline.semantic_ids.parse_answer`, shared with the SRPO reward (`reward_fns.srpo`
re-exports it): the last complete answer block must hold one well-formed ID (`<|a_12|>` normalised to `<a_12>`);
a text without a block is read as a bare direct-mode ID. `local_parse_answer` is kept as an alias.
"""

from __future__ import annotations

from collections.abc import Callable

from gream_pipeline.semantic_ids import parse_answer

local_parse_answer = parse_answer
PARSER_ORIGIN = "gream_pipeline.semantic_ids"


def get_parser() -> tuple[Callable[[str], list[str] | None], str]:
    """The answer parser and its origin (recorded as `answer_parser` in metrics.json)."""
    return parse_answer, PARSER_ORIGIN
