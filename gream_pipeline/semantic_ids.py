"""The semantic-ID token grammar — the one place that knows how ID tokens are spelled (docs/CONVENTIONS.md).

Pure Python, standard library only: imported by the SRPO reward (:mod:`reward_fns.srpo`), the index stage, data
synthesis, SFT model preparation and evaluation.

Grammar::

    token      := "<" letter "_" code ">"    letter = a, b, c, … (level 0, 1, 2, …), code = 0 | [1-9][0-9]*
    ID         := token+                      levels a, b, c, … in order; the conflict slot is the next letter
    ID string  := "".join(tokens)             "<a_12><b_200><c_7><d_31>", with a slot "<a_1><b_2><c_3><d_4><e_0>"

Codes are ASCII decimal numbers without leading zeros, exactly as :func:`format_token` writes them, so
``format_token(*code_of(t)) == t`` for every token ``t`` that :data:`TOKEN_RE` matches.

Answers (:func:`parse_answer`, shared by the SRPO reward and evaluation) — one rule:

* The last complete ``<answer>…</answer>`` block (the last ``</answer>`` and the nearest ``<answer>`` before it) is
  the answer. Its body must be one ID: ID tokens separated by optional whitespace and nothing else, levels
  a, b, c, … in order. The paper's Appendix C spelling ``<|a_12|>`` (and leading zeros) is accepted there and
  normalised to ``<a_12>``. Anything else in the block (prose, an empty block, ``<b_1><a_2>``) → ``None``.
* Without a complete block (direct mode), the whole text must be canonical ID tokens and whitespace; the tokens are
  returned verbatim, in any level order (the reward scores the longest correct prefix of what was sampled).
* Anything else, including non-``str`` input → ``None``. Never raises.

A direct-mode completion in the ``continuation`` row format (``sft.seqrec_format``) continues the history's run of
IDs, so its answer is the ID it starts with (:func:`first_id`): the leading tokens of levels a, b, c, … in order, up
to the next level-a token (the item after it) or anything else.

Where the two former parsers (``reward_fns.srpo`` and ``gream_pipeline.eval.answers``) disagreed, the rule pinned by
the SRPO reward tests wins: bare direct-mode outputs are answers, read verbatim in any level order, and the block is
found from the last ``</answer>``. Inside a block the evaluation parser's stricter checks (only ID tokens, level
order, ``<|a_12|>`` accepted) are kept, since no reward test contradicts them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from string import ascii_lowercase

LETTERS = ascii_lowercase
#: Number of letters, i.e. code levels plus the conflict slot.
MAX_LEVELS = len(LETTERS)

_CODE = r"(?:0|[1-9][0-9]*)"
_TOKEN = rf"<[a-z]_{_CODE}>"
#: One canonical ID token; groups: level letter, code.
TOKEN_RE = re.compile(rf"<([a-z])_({_CODE})>")
#: A run of ID tokens with optional whitespace between them (e.g. one or several IDs written in a row).
TOKEN_RUN_RE = re.compile(rf"(?:{_TOKEN}\s*)*{_TOKEN}")
#: Anything that looks like an ID token, well-formed or not (``<|a_1|>``, ``< A_01 >``): used to reject stray spellings.
ID_LIKE_RE = re.compile(r"<\s*\|?\s*[a-zA-Z]_\d+\s*\|?\s*>")
#: A token as accepted inside an ``<answer>`` block: ``<a_12>`` or ``<|a_12|>``, leading zeros allowed; groups:
#: pipe, level letter, code.
ANSWER_TOKEN_RE = re.compile(r"<(\|?)([a-z])_([0-9]+)\1>")
_BARE_RE = re.compile(rf"\s*(?:{_TOKEN}\s*)+")

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"


# ----------------------------------------------------------------------------------------------- tokens


def level_letter(level: int) -> str:
    """Letter of level ``level`` (0-based): a, b, c, …"""
    if not 0 <= level < MAX_LEVELS:
        raise ValueError(f"level {level} out of range (0…{MAX_LEVELS - 1})")
    return LETTERS[level]


def format_token(level: int, code: int) -> str:
    """``(0, 12)`` → ``"<a_12>"``."""
    code = int(code)
    if code < 0:
        raise ValueError(f"code must be ≥ 0, got {code}")
    return f"<{level_letter(int(level))}_{code}>"


def code_of(token: str) -> tuple[int, int]:
    """``"<b_200>"`` → ``(1, 200)`` (level, code); ``ValueError`` unless ``token`` is one canonical ID token."""
    m = TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
    if m is None:
        raise ValueError(f"not an ID token: {token!r}")
    return LETTERS.index(m.group(1)), int(m.group(2))


def is_token(token: object) -> bool:
    """True iff ``token`` is exactly one canonical ID token."""
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


# ----------------------------------------------------------------------------------------------- IDs


def id_tokens(codes: Sequence[int]) -> list[str]:
    """``[12, 200, 7, 31]`` → ``["<a_12>", "<b_200>", "<c_7>", "<d_31>"]``."""
    return [format_token(level, c) for level, c in enumerate(codes)]


def format_id(codes: Sequence[int]) -> str:
    """``[12, 200, 7, 31]`` → ``"<a_12><b_200><c_7><d_31>"``."""
    return "".join(id_tokens(codes))


def parse_tokens(text: str) -> list[str]:
    """Every canonical ID token in ``text``, in order (``"<a_1> x <b_2>"`` → ``["<a_1>", "<b_2>"]``)."""
    return [m.group(0) for m in TOKEN_RE.finditer(text)]


def split_ids(tokens: str | Iterable[str]) -> list[str]:
    """A run of tokens (a string, or token strings) → ID strings; a new ID starts at each level-a token."""
    toks = parse_tokens(tokens if isinstance(tokens, str) else "".join(tokens))
    ids: list[str] = []
    for t in toks:
        if not ids or t.startswith("<a_"):
            ids.append(t)
        else:
            ids[-1] += t
    return ids


def is_valid_id(value: object) -> bool:
    """True iff ``value`` (an ID string or a token sequence) is ≥ 1 canonical token with levels a, b, c, … in order.

    An ID string must be the bare concatenation of its tokens (no whitespace or other text).
    """
    if isinstance(value, str):
        tokens = parse_tokens(value)
        if "".join(tokens) != value:
            return False
    elif isinstance(value, Iterable):
        tokens = list(value)
        if not all(is_token(t) for t in tokens):
            return False
    else:
        return False
    return bool(tokens) and [code_of(t)[0] for t in tokens] == list(range(len(tokens)))


def vocabulary(codebook_sizes: Sequence[int], slot_size: int) -> list[str]:
    """Every ID token a model needs: all level codes, then ``slot_size`` conflict-slot tokens (next letter).

    ``vocabulary([2, 3], 2)`` → ``<a_0> <a_1> <b_0> <b_1> <b_2> <c_0> <c_1>``.
    """
    tokens = [format_token(level, c) for level, size in enumerate(codebook_sizes) for c in range(int(size))]
    return tokens + [format_token(len(codebook_sizes), c) for c in range(int(slot_size))]


def slot_size(index: Mapping[object, Sequence[str]] | Iterable[Sequence[str]], levels: int) -> int:
    """Conflict-slot size of an index: 1 + the largest slot code among IDs longer than ``levels`` (0 when none).

    ``index`` is ``{item: tokens}`` (``index.json``) or an iterable of token lists; the slot is token ``levels``
    and must carry the letter after the last level.
    """
    ids = index.values() if isinstance(index, Mapping) else index
    size = 0
    for tokens in ids:
        if len(tokens) > levels:
            level, code = code_of(tokens[levels])
            if level != levels:
                raise ValueError(f"conflict slot {tokens[levels]!r} is not at level {level_letter(levels)}")
            size = max(size, code + 1)
    return size


# ----------------------------------------------------------------------------------------------- answers


def _answer_block(body: str) -> list[str] | None:
    """Body of an ``<answer>`` block → its ID's canonical tokens, or ``None`` (module docstring)."""
    found = list(ANSWER_TOKEN_RE.finditer(body))
    if not found or ANSWER_TOKEN_RE.sub("", body).strip():
        return None
    letters = [m.group(2) for m in found]
    if letters != list(LETTERS[: len(letters)]):
        return None
    return [f"<{m.group(2)}_{m.group(3).lstrip('0') or '0'}>" for m in found]


def parse_answer(text: object) -> list[str] | None:
    """ID tokens of the last ``<answer>…</answer>`` block, or of a bare direct-mode output; else ``None``.

    The one answer rule of the project (module docstring): a block must hold exactly one well-formed ID
    (``<|a_12|>`` normalised to ``<a_12>``); a text without a complete block must be canonical ID tokens and
    whitespace only, returned verbatim. Never raises.
    """
    if not isinstance(text, str):
        return None
    end = text.rfind(ANSWER_CLOSE)
    start = text.rfind(ANSWER_OPEN, 0, end) if end >= 0 else -1
    if start >= 0:
        return _answer_block(text[start + len(ANSWER_OPEN):end])
    if _BARE_RE.fullmatch(text):
        return parse_tokens(text)
    return None


def first_id(text: object) -> list[str] | None:
    """Tokens of the ID a continuation starts with (module docstring): leading canonical tokens of levels a, b, c, …
    in order (``"<a_1><b_2><a_7>…"`` → ``["<a_1>", "<b_2>"]``); ``None`` unless ``text`` starts with a level-a token
    (leading whitespace allowed). Never raises."""
    if not isinstance(text, str):
        return None
    body, pos, tokens = text.lstrip(), 0, []
    while (m := TOKEN_RE.match(body, pos)) is not None and m.group(1) == LETTERS[len(tokens)]:
        tokens.append(m.group(0))
        pos = m.end()
        if len(tokens) == MAX_LEVELS:
            break
    return tokens or None
