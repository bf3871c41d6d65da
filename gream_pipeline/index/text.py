"""Item text fusion (paper §4.1): title, description, brand, categories and optionally reviews in one string."""

from __future__ import annotations

from typing import Mapping, Sequence

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
        value = enriched if (name == "description" and enriched) else record.get(name, "")
        if value and str(value).strip():
            parts.append(f"{name.capitalize()}: {str(value).strip()}")
    if reviews:
        parts.append("Reviews: " + " | ".join(r.strip() for r in reviews if r.strip()))
    return "\n".join(parts)[:max_chars]
