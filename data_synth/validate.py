"""Validation of every LLM (or template) output before it is kept — pure functions, no framework imports.

Reasoning outputs (paper §4.2, Appendix C format) must satisfy, in this order of checks:

* length: total ≤ ``max_chars``;
* ID tokens: every ``<x_N>``-like token is well-formed (``<|a_1|>`` is rejected) and every run of ID tokens anywhere
  in the text splits into known ID strings of the index (an ID starts at each ``<a_…>``) — no invented IDs;
* sections: the text starts with ``<think>``; ``<think>``, the three Step headings, ``</think>``, the rewrite line
  ``Let's rewrite user's purchase history:``, ``<answer>``, ``</answer>`` each occur exactly once and in this order;
  nothing but whitespace follows ``</answer>``; every step body has ``min_step_chars``…``max_step_chars`` characters;
* rewrite (denoised sequence rewriting): the line(s) after the rewrite heading list ≥ 1 ID, and the listed IDs are a
  subsequence of the real history's IDs; a justification of ≥ ``min_justification_chars`` follows before ``<answer>``;
* answer: exactly one ID inside ``<answer>…</answer>`` and, for reverse reasoning, it equals the target's ID.

The user-preference summary (alignment task "history → preference text", §4.1) is **derived from Step 2** (Modeling
of Latent Preferences): its body, with markdown emphasis removed. No extra section is added to the paper's format.

Enrichment outputs: a leading ``<think>…</think>`` block (reasoning models) is dropped; the rest must be plain text
of ``min_enrich_chars``…``max_enrich_chars`` characters with no ID-like tokens and no format tags.

Rejection reasons are short stable codes (``Invalid.reason``) used in counts and in ``rejected.jsonl``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Container, Sequence

from gream_pipeline import semantic_ids

from .prompts import ANSWER_CLOSE, ANSWER_OPEN, REWRITE_HEADING, STEP_HEADINGS, THINK_CLOSE, THINK_OPEN

# Token grammar: gream_pipeline.semantic_ids (one home); the short names are kept for importers.
TOKEN = semantic_ids.TOKEN_RE
ID_RUN = semantic_ids.TOKEN_RUN_RE
LOOSE_TOKEN = semantic_ids.ID_LIKE_RE
_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)
_EMPHASIS = re.compile(r"\*\*|__")


class Invalid(ValueError):
    """An output that fails validation; ``reason`` is a short stable code, ``detail`` a human hint."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_chars: int = 8000
    min_step_chars: int = 20
    max_step_chars: int = 3000
    min_justification_chars: int = 10
    min_enrich_chars: int = 40
    max_enrich_chars: int = 2000


@dataclass
class ReasonParse:
    steps: tuple[str, str, str]
    preference: str
    rewritten: list[str]
    answer: str
    extra: dict = field(default_factory=dict)


def split_ids(run: str) -> list[str]:
    """A run of ID tokens (whitespace allowed between tokens) → ID strings; a new ID starts at each ``<a_…>``."""
    return semantic_ids.split_ids(run)


def ids_in(text: str) -> list[str]:
    """All ID strings mentioned in ``text``, in order."""
    return [iid for run in ID_RUN.findall(text) for iid in split_ids(run)]


def is_subsequence(seq: Sequence[str], of: Sequence[str]) -> bool:
    it = iter(of)
    return all(any(x == y for y in it) for x in seq)


def check_tokens(text: str, known_ids: Container[str]) -> None:
    """Raise unless every ID-like token is well-formed and every ID mentioned exists in the index."""
    for loose in LOOSE_TOKEN.findall(text):
        if not TOKEN.fullmatch(loose):
            raise Invalid("malformed_id_token", loose)
    for iid in ids_in(text):
        if iid not in known_ids:
            raise Invalid("unknown_id", iid)


def _positions(text: str) -> list[int]:
    markers = (THINK_OPEN, *STEP_HEADINGS, THINK_CLOSE, REWRITE_HEADING, ANSWER_OPEN, ANSWER_CLOSE)
    positions = []
    for marker in markers:
        count = text.count(marker)
        if count != 1:
            raise Invalid("missing_section" if count == 0 else "repeated_section", marker)
        positions.append(text.index(marker))
    if positions != sorted(positions):
        raise Invalid("section_order")
    return positions


def _body(text: str, start: int, heading: str, end: int) -> str:
    body = text[start + len(heading):end]
    return _EMPHASIS.sub("", body).strip().lstrip(":").strip()


def _rewrite(segment: str) -> tuple[list[str], str]:
    """Rewrite segment (after the heading, before ``<answer>``) → (listed IDs, justification text)."""
    lines = segment.split("\n")
    listed: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        found = ids_in(line)
        if found:
            listed.extend(found)
            used = i + 1
        elif listed or (i > 0 and line.strip()):
            break
    return listed, "\n".join(lines[used:]).strip()


def validate_reasoning(text: str, history_ids: Sequence[str], target_id: str | None, known_ids: Container[str],
                       limits: Limits = Limits()) -> ReasonParse:
    """Check a reasoning output (module docstring); return its parts or raise ``Invalid``."""
    if not text or not text.strip():
        raise Invalid("empty")
    if len(text) > limits.max_chars:
        raise Invalid("too_long", f"{len(text)} > {limits.max_chars} chars")
    check_tokens(text, known_ids)
    if not text.lstrip().startswith(THINK_OPEN):
        raise Invalid("missing_section", "text must start with <think>")
    pos = _positions(text)
    steps = tuple(_body(text, pos[i + 1], STEP_HEADINGS[i], pos[i + 2]) for i in range(3))
    for i, body in enumerate(steps, 1):
        if not limits.min_step_chars <= len(body) <= limits.max_step_chars:
            raise Invalid("step_length", f"step {i}: {len(body)} chars")
    if text[pos[7] + len(ANSWER_CLOSE):].strip():
        raise Invalid("text_after_answer")
    if text[pos[4] + len(THINK_CLOSE):pos[5]].strip():
        raise Invalid("text_before_rewrite")
    listed, justification = _rewrite(text[pos[5] + len(REWRITE_HEADING):pos[6]])
    if not listed:
        raise Invalid("empty_rewrite")
    if not is_subsequence(listed, history_ids):
        raise Invalid("rewrite_not_subsequence", " ".join(listed))
    if len(justification) < limits.min_justification_chars:
        raise Invalid("missing_justification")
    answer_text = text[pos[6] + len(ANSWER_OPEN):pos[7]]
    answer = ids_in(answer_text)
    if len(answer) != 1 or ID_RUN.sub("", answer_text).strip():
        raise Invalid("answer_malformed", answer_text.strip()[:80])
    if target_id is not None and answer[0] != target_id:
        raise Invalid("answer_mismatch", f"{answer[0]} != {target_id}")
    return ReasonParse(steps=steps, preference=steps[1], rewritten=listed, answer=answer[0])


def validate_enrichment(text: str, limits: Limits = Limits()) -> str:
    """Check an item description; return the cleaned text or raise ``Invalid``."""
    cleaned = _THINK_BLOCK.sub("", text or "").strip()
    if not cleaned:
        raise Invalid("empty")
    if LOOSE_TOKEN.search(cleaned):
        raise Invalid("id_token_in_description")
    if any(tag in cleaned for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)):
        raise Invalid("format_tag_in_description")
    if len(cleaned) < limits.min_enrich_chars:
        raise Invalid("too_short", f"{len(cleaned)} < {limits.min_enrich_chars} chars")
    if len(cleaned) > limits.max_enrich_chars:
        raise Invalid("too_long", f"{len(cleaned)} > {limits.max_enrich_chars} chars")
    return cleaned
