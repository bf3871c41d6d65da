"""Offline synthesizer: deterministic, metadata-driven texts in exactly the LLM output formats.

Used when no endpoint is configured; records are stored with ``source: "template"``. The outputs pass the same
validators as LLM outputs (``validate.py``). Reasoning (paper §4.2, Appendix C format):

* Step 1 — counts of the history's product types (leaf categories) and brands, and the most recent titles;
* Step 2 — the preference summary: main product types, brand affinity, recent focus (≤ 3 bullets);
* Step 3 — the goal, chosen by how the target relates to the history: same product type (replenish/upgrade), shared
  parent category (complement), same brand (brand loyalty), or none (explore);
* rewrite (denoising) — the history items sharing a category level (below the catalog root) or the brand with the
  target, in order; the most recent item when none does;
* recommendation — the target's title/brand and the goal, then ``<answer>target ID</answer>``.

Two styles of the same format (``synth.offline_style``): ``full`` (above) and ``compact``, which keeps every section
but shortens what a small model must reproduce token by token: one most recent item, at most three rewritten items
(the most recent related ones), shorter titles, and the goal stated once (Step 3) instead of twice. Items without any
text degrade to ID-only sentences that still satisfy the format.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

from .prompts import ANSWER_CLOSE, ANSWER_OPEN, REWRITE_HEADING, STEP_HEADINGS, THINK_CLOSE, THINK_OPEN, clean



@dataclass(frozen=True)
class Style:
    """Lengths of one template style: recent items in Step 1, rewritten items (None: all related ones), title
    characters of history and target items, and whether the recommendation repeats the goal."""

    version: str  # part of the store key of template records (as their "model")
    recent_items: int
    max_rewrite: int | None
    title_chars: int
    target_title_chars: int
    repeat_goal: bool


STYLES = {
    "full": Style("template-v1", recent_items=2, max_rewrite=None, title_chars=60, target_title_chars=90,
                  repeat_goal=True),
    "compact": Style("template-compact-v1", recent_items=1, max_rewrite=3, title_chars=32, target_title_chars=48,
                     repeat_goal=False),
}


def style(name: str) -> Style:
    """The template style called ``name`` (``synth.offline_style``)."""
    if name not in STYLES:
        raise ValueError(f"unknown offline_style {name!r}; known: {sorted(STYLES)}")
    return STYLES[name]


def categories(meta: Mapping[str, object]) -> list[str]:
    """Category path below the catalog root (``"A,B,C"`` → ``["B", "C"]``; a one-level path is kept)."""
    parts = [clean(p) for p in str(meta.get("categories") or "").split(",")]
    parts = [p for p in parts if p]
    return parts[1:] if len(parts) > 1 else parts


def _leaf(meta: Mapping[str, object]) -> str:
    cats = categories(meta)
    return cats[-1] if cats else ""


def _title(meta: Mapping[str, object], n: int = 70) -> str:
    return clean(meta.get("title"), n).rstrip(" .")


def _counted(counter: Counter, k: int) -> str:
    return ", ".join(f"{name} ({n})" for name, n in counter.most_common(k))


def _relevant(history: Sequence[Mapping], target: Mapping) -> list[int]:
    """Indices of history items related to the target (shared category below root, or brand); ≥ 1 item."""
    t_cats, t_brand = set(categories(target)), clean(target.get("brand")).lower()
    keep = [i for i, m in enumerate(history)
            if (t_cats & set(categories(m))) or (t_brand and clean(m.get("brand")).lower() == t_brand)]
    return keep or [len(history) - 1]


def _goal(history: Sequence[Mapping], target: Mapping) -> str:
    leaf, brand = _leaf(target), clean(target.get("brand"))
    kind = f"an item from {leaf}" if leaf else "a related item"
    if leaf and leaf in {_leaf(m) for m in history}:
        return f"restock or upgrade within {leaf}, a product type they already buy"
    parents = set(categories(target)[:-1])
    shared = [c for m in history for c in categories(m)[:-1] if c in parents]
    if shared:
        return f"complement their {shared[-1]} purchases with {kind}"
    if brand and brand.lower() in {clean(m.get("brand")).lower() for m in history}:
        return f"stay with {brand}, a brand they already bought, for {kind}"
    return f"explore a new product type ({leaf or 'a related item'}) that extends their current setup"


def _step1(history_ids: Sequence[str], history: Sequence[Mapping], st: Style) -> str:
    n = len(history)
    leafs = Counter(x for x in (_leaf(m) for m in history) if x)
    brands = Counter(x for x in (clean(m.get("brand"), 40) for m in history) if x)
    lines = [f"- The user has interacted with {n} item{'s' if n != 1 else ''} in chronological order."]
    if leafs:
        lines.append(f"- Product types: {_counted(leafs, 4)}.")
    if brands:
        lines.append(f"- Brands: {_counted(brands, 3)}.")
    k = st.recent_items
    recent = [(iid, _title(m, st.title_chars)) for iid, m in zip(history_ids[-k:], history[-k:])]
    lines.append("- Most recent: " + "; ".join(f"{iid} ({t})" if t else iid for iid, t in reversed(recent)) + ".")
    return "\n".join(lines)


def _step2(history: Sequence[Mapping]) -> str:
    parents = Counter(c for m in history for c in categories(m)[:1])
    brands = Counter(x for x in (clean(m.get("brand"), 40) for m in history) if x)
    lines = []
    if parents:
        lines.append(f"- Main interest: {', '.join(name for name, _ in parents.most_common(3))}.")
    if brands:
        top, count = brands.most_common(1)[0]
        lines.append(f"- Brand affinity: {top} (bought {count} times)." if count > 1
                     else "- No strong brand loyalty; open to different brands.")
    recent = _leaf(history[-1])
    lines.append(f"- Recent focus: {recent}." if recent
                 else f"- Engages with a sequence of {len(history)} related items; recent items matter most.")
    return "\n".join(lines)


def _step3(history: Sequence[Mapping], target: Mapping, st: Style) -> str:
    recent = [x for x in (_leaf(m) for m in history[-3:]) if x]
    context = f"The latest purchases ({', '.join(dict.fromkeys(recent))})" if recent else "The latest purchases"
    text = f"{context} and the preferences above suggest the user's next goal is to {_goal(history, target)}."
    return text + (" The next item should fit this goal and the user's established preferences."
                   if st.repeat_goal else "")


def synth_reasoning(history_ids: Sequence[str], history: Sequence[Mapping], target_id: str,
                    target: Mapping, style_name: str = "full") -> str:
    """Template reasoning text for one (history → target) example in style ``style_name`` (module docstring)."""
    st = style(style_name)
    keep = _relevant(history, target)
    if st.max_rewrite is not None:
        keep = keep[-st.max_rewrite:]
    n = st.title_chars
    listed = ", ".join(f"{history_ids[i]} ({_title(history[i], n)})" if _title(history[i], n) else history_ids[i]
                       for i in keep)
    title, brand = _title(target, st.target_title_chars), clean(target.get("brand"), 40)
    what = f"\"{title}\"" + (f" by {brand}" if brand else "") if title else "the next item"
    why = f"the user is likely to {_goal(history, target)}, so " if st.repeat_goal else ""
    return (
        f"{THINK_OPEN}\n{STEP_HEADINGS[0]}:\n{_step1(history_ids, history, st)}\n\n"
        f"{STEP_HEADINGS[1]}:\n{_step2(history)}\n\n"
        f"{STEP_HEADINGS[2]}:\n{_step3(history, target, st)}\n{THINK_CLOSE}\n\n"
        f"{REWRITE_HEADING} {listed}.\n\n"
        f"Based on the above analysis, {why}the recommended product is {what}: "
        f"{ANSWER_OPEN}{target_id}{ANSWER_CLOSE}"
    )


def has_text(meta: Mapping[str, object]) -> bool:
    return any(clean(meta.get(k)) for k in ("title", "description", "brand", "categories"))


def synth_description(meta: Mapping[str, object], max_words: int = 110) -> str:
    """Template item description: title, brand, category path and the start of the catalog description."""
    title, brand = clean(meta.get("title"), 200), clean(meta.get("brand"), 80)
    cats = categories(meta)
    parts = [f"{title}." if title else "Product."]
    if brand:
        parts.append(f"Brand: {brand}.")
    if cats:
        parts.append(f"Category: {' > '.join(cats)}.")
    desc = clean(meta.get("description"))
    if desc:
        budget = max(10, max_words - sum(len(p.split()) for p in parts))
        words = desc.split()
        parts.append(" ".join(words[:budget]) + ("…" if len(words) > budget else ""))
    text = " ".join(parts)
    if len(text) < 40:
        text += " A catalog item with limited product information."
    return text
