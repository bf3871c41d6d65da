"""All LLM prompts of the synth stage, versioned (paper §4.1, §4.2 and Appendix C).

A prompt version is part of every store key (``store.make_key``): changing a prompt's wording requires a new version
string, which makes the next run request everything again instead of mixing outputs of two prompts. Old versions stay
in the registries so earlier stores remain reproducible.

Reasoning (``reason-v1``): the system prompt is the paper's Appendix C system prompt verbatim (including its typo
"You task"). The user turn is the paper's forward question followed by the *reverse-reasoning* block: the teacher is
told the item the user actually bought next and must write reasoning that leads to it (paper §4.2), in the Appendix C
output format. The forward question alone (``forward_question``) is what a student model sees at SFT/eval time.

Enrichment (``enrich-v1``): title, description, brand, categories (and reviews where present) → one feature-rich
description (paper §4.1, the index stage's alternative text source).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

REASON_PROMPT_VERSION = "reason-v1"
ENRICH_PROMPT_VERSION = "enrich-v1"

# Section markers of the reasoning format (Appendix C); the validator checks them in this order.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
STEP_HEADINGS = (
    "Step 1: Extraction of Behavioral Evidence",
    "Step 2: Modeling of Latent Preferences",
    "Step 3: Inference of User Intent and Goal Formulation",
)
REWRITE_HEADING = "Let's rewrite user's purchase history:"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# Appendix C, verbatim.
REASON_SYSTEM_V1 = """You are an AI recommendation model. You task is to analyze the user's purchase history to recommend what they would likely purchase next.

Your output must be structured into following format:

<think>

- **Step 1: Extraction of Behavioral Evidence:** Examine the items in the purchase history, including their metadata, to identify patterns, trends, or any other insights.
- **Step 2: Modeling of Latent Preferences:** Based on the analysis, infer and summarize the user's preferences.
- **Step 3: Inference of User Intent and Goal Formulation:** Deduce the user's potential purchase intent or next likely item by connecting the history and preferences.

</think>

Then rewrite the user purchase history and recommend the next item the user may buy based on your analysis. Enclose the item in <answer> </answer> xml tags."""

# Appendix C user turn; {history} is the comma-separated list of history item IDs.
FORWARD_QUESTION_V1 = (
    "The user has interacted with items {history} in chronological order. "
    "Can you predict the next possible item that the user may expect?"
)

REVERSE_BLOCK_V1 = """Item details (ID: title | brand | categories | description):
{details}

The item the user actually interacted with next is {target}.
Details: {target_details}

Write the response a recommender would write when predicting this item from the history alone (reverse reasoning): never say that the next item was given to you. Follow these rules exactly:
1. Start with <think>. Use exactly these three headings, in this order, each on its own line: "Step 1: Extraction of Behavioral Evidence:", "Step 2: Modeling of Latent Preferences:", "Step 3: Inference of User Intent and Goal Formulation:". Then close with </think>.
2. Step 2 is a concise summary of the user's preferences (at most 5 short bullet points); it is reused as the user's preference profile.
3. After </think>, write ONE line that starts with "Let's rewrite user's purchase history:" and lists, in chronological order, only the history items relevant to the next purchase (drop noisy or unrelated items, keep at least one), each as its ID followed by its title in parentheses, separated by ", ".
4. Then justify the recommendation in one or two sentences, and end the response with <answer>{target}</answer>.
5. Write item IDs exactly as shown above. Never write any other token of the form <x_N>."""

ENRICH_SYSTEM_V1 = (
    "You are an expert e-commerce copywriter. Rewrite the product information you are given into one comprehensive, "
    "feature-rich description that captures the item's objective attributes (product type, function, materials, "
    "specifications, compatibility, intended use) and, where reviews are given, users' subjective perceptions. "
    "Write plain text: a single paragraph of at most 120 words, no markup, lists or headings. "
    "Do not invent specifications that the input does not support."
)

ENRICH_USER_V1 = """Title: {title}
Brand: {brand}
Categories: {categories}
Description: {description}{reviews}

Write the description."""


@dataclass(frozen=True)
class ReasonPrompt:
    version: str
    system: str
    forward: str
    reverse: str


@dataclass(frozen=True)
class EnrichPrompt:
    version: str
    system: str
    user: str


REASON_PROMPTS: dict[str, ReasonPrompt] = {
    "reason-v1": ReasonPrompt("reason-v1", REASON_SYSTEM_V1, FORWARD_QUESTION_V1, REVERSE_BLOCK_V1),
}
ENRICH_PROMPTS: dict[str, EnrichPrompt] = {
    "enrich-v1": EnrichPrompt("enrich-v1", ENRICH_SYSTEM_V1, ENRICH_USER_V1),
}

_ANGLE = re.compile(r"[<>]")
_SPACE = re.compile(r"\s+")


def clean(text: object, max_chars: int | None = None) -> str:
    """Metadata text safe to put into prompts and templates: one line, no ``<``/``>`` (so no ID-like tokens)."""
    out = _SPACE.sub(" ", _ANGLE.sub(" ", str(text or ""))).strip()
    if max_chars is not None and len(out) > max_chars:
        out = out[:max_chars].rsplit(" ", 1)[0].rstrip(" ,;.") + " …"
    return out


def _get(version: str, registry: Mapping[str, object], kind: str):
    if version not in registry:
        raise KeyError(f"unknown {kind} prompt version {version!r}; known: {sorted(registry)}")
    return registry[version]


def item_details(meta: Mapping[str, object], desc_chars: int) -> str:
    """``title | brand | categories | description`` of one item (empty fields shown as ``-``)."""
    fields = [clean(meta.get("title"), 200), clean(meta.get("brand"), 80), clean(meta.get("categories"), 200),
              clean(meta.get("description"), desc_chars)]
    return " | ".join(f or "-" for f in fields)


def forward_question(history_ids: Sequence[str], version: str = REASON_PROMPT_VERSION) -> str:
    """The paper's user turn (Appendix C) for a history given as ID strings — what the student model sees."""
    prompt: ReasonPrompt = _get(version, REASON_PROMPTS, "reason")
    return prompt.forward.format(history=", ".join(history_ids))


def reason_system(version: str = REASON_PROMPT_VERSION) -> str:
    """The paper's system prompt (Appendix C) of prompt ``version``."""
    return _get(version, REASON_PROMPTS, "reason").system


def reason_messages(history_ids: Sequence[str], history_meta: Sequence[Mapping[str, object]], target_id: str,
                    target_meta: Mapping[str, object], version: str = REASON_PROMPT_VERSION,
                    desc_chars: int = 200) -> list[dict[str, str]]:
    """Teacher request for reverse reasoning (§4.2): system prompt + forward question + the true next item."""
    prompt: ReasonPrompt = _get(version, REASON_PROMPTS, "reason")
    details = "\n".join(f"{iid}: {item_details(m, desc_chars)}" for iid, m in zip(history_ids, history_meta))
    user = prompt.forward.format(history=", ".join(history_ids)) + "\n\n" + prompt.reverse.format(
        details=details, target=target_id, target_details=item_details(target_meta, desc_chars))
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]


def enrich_messages(meta: Mapping[str, object], version: str = ENRICH_PROMPT_VERSION,
                    desc_chars: int = 1500) -> list[dict[str, str]]:
    """Teacher request for item-description enrichment (§4.1)."""
    prompt: EnrichPrompt = _get(version, ENRICH_PROMPTS, "enrich")
    reviews = meta.get("reviews") or ""
    if isinstance(reviews, (list, tuple)):
        reviews = " / ".join(clean(r, 300) for r in reviews[:5])
    user = prompt.user.format(
        title=clean(meta.get("title"), 300) or "-", brand=clean(meta.get("brand"), 100) or "-",
        categories=clean(meta.get("categories"), 300) or "-", description=clean(meta.get("description"),
                                                                               desc_chars) or "-",
        reviews=f"\nReviews: {clean(reviews, desc_chars)}" if reviews else "")
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]
