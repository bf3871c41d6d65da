"""Item text fusion (paper §4.1): title, description, brand, categories and optionally reviews in one string.

Empty fields (an empty title is a content gap the data stage keeps and counts) are left out of the text.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from gream_pipeline.data.lcrec import clean_field

DEFAULT_FIELDS = ("title", "brand", "categories", "description")


def fuse_item_text(
    record: Mapping[str, str],
    fields: Sequence[str] = DEFAULT_FIELDS,
    reviews: Sequence[str] = (),
    max_chars: int = 2000,
    enriched: str | None = None,
) -> str:
    """One text per item: ``Field: value`` parts joined by newlines, truncated to ``max_chars``.

    ``enriched`` (an LLM-rewritten description from the synthesis stage) replaces the original description,
    as in the paper, which encodes the title concatenated with the synthesised description.
    """
    parts = []
    for name in fields:
        value = _text(enriched) if name == "description" and _text(enriched) else _text(record.get(name))
        if value:
            parts.append(f"{name.capitalize()}: {value}")
    texts = [t for t in (_text(r) for r in reviews) if t]
    if texts:
        parts.append("Reviews: " + " | ".join(texts))
    return "\n".join(parts)[:max_chars]


def _text(value: object) -> str:
    """A field as text: strings without control characters (tabs/line breaks kept) and surrounding whitespace;
    lists of strings joined with ", "; anything else (None, numbers, objects of an older items.json) is no text.
    An item whose title is empty thus gets its text from the other fields (or none)."""
    if isinstance(value, str):
        return clean_field(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(t for t in (_text(v) for v in value) if t)
    return ""
