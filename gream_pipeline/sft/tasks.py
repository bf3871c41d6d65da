"""Alignment tasks D_align and reasoning samples D_reason (paper §4.1–4.3) as chat examples.

Alignment tasks, several phrasings each (the first phrasing of ``seqrec`` is exactly the direct-mode evaluation
prompt, :func:`gream_pipeline.prompts.direct_messages`, and is used for half of the examples):

- ``seqrec``: history IDs → next ID, from *training* examples only (targets s[1..n-3]; never validation/test);
- ``item2id``: title (or title + description) → ID;  ``id2title`` / ``id2desc``: ID → title / description;
- ``preference``: history IDs → the user's preference summary (from the synth stage's reasoning records).

Reasoning samples: the paper's system prompt + history question → the synthesised ``<think>…<answer>`` response.
An example is ``{"task", "system", "prompt", "response"}``; the LLaMA-Factory glue formats it.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

from gream_pipeline.prompts import DIRECT_SYSTEM, REASON_SYSTEM, history_question

ALIGN_SYSTEM = (
    "You are an AI recommendation model that knows every item of the catalogue by its ID "
    "(a sequence of tokens such as <a_1><b_2><c_3><d_4>)."
)

SEQREC_VARIANTS = (
    "Here is a user's purchase history in chronological order: {history}. Which item will the user buy next? "
    "Answer with its ID.",
    "Given the items {history} that a user bought, one after another, recommend the next item (ID only).",
    "A customer purchased {history}. Predict the ID of their next purchase.",
)
ITEM2ID = (
    'Which item has the title "{title}"? Answer with its ID.',
    'What is the ID of the item titled "{title}"?',
    'Find the ID of this item. Title: "{title}". Description: {description}',
)
ID2TITLE = ("What is the title of item {id}?", "Item {id} is called what?")
ID2DESC = ("Describe item {id}.", "Give a short description of the item {id}.")
PREFERENCE = (
    "The user has interacted with items {history} in chronological order. Summarise the user's preferences.",
    "Based on the purchase history {history}, what does this user like?",
)


def _id(index: Mapping[str, Sequence[str]], item: int | str) -> str:
    return "".join(index[str(item)])


def _example(task: str, system: str, prompt: str, response: str) -> dict:
    return {"task": task, "system": system, "prompt": prompt, "response": response}


def seqrec_examples(train: Sequence[Mapping], index: Mapping[str, Sequence[str]], rng: random.Random) -> list[dict]:
    """history → next ID; half the examples use the exact evaluation prompt, the rest other phrasings."""
    out = []
    for ex in train:
        history = [_id(index, i) for i in ex["history"]]
        if rng.random() < 0.5:
            out.append(_example("seqrec", DIRECT_SYSTEM, history_question(history), _id(index, ex["target"])))
        else:
            prompt = rng.choice(SEQREC_VARIANTS).format(history=", ".join(history))
            out.append(_example("seqrec", ALIGN_SYSTEM, prompt, _id(index, ex["target"])))
    return out


def item_examples(items: Mapping[str, Mapping[str, str]], index: Mapping[str, Sequence[str]], rng: random.Random,
                  max_desc_chars: int = 300) -> list[dict]:
    """Semantic reconstruction: text → ID and ID → title/description, for every item with text."""
    out = []
    for key in sorted(items, key=int):
        record, item_id = items[key], _id(index, key)
        title, desc = record.get("title", ""), record.get("description", "")[:max_desc_chars].strip()
        if not title:
            continue
        template = rng.choice(ITEM2ID if desc else ITEM2ID[:2])
        out.append(_example("item2id", ALIGN_SYSTEM, template.format(title=title, description=desc), item_id))
        out.append(_example("id2title", ALIGN_SYSTEM, rng.choice(ID2TITLE).format(id=item_id), title))
        if desc:
            out.append(_example("id2desc", ALIGN_SYSTEM, rng.choice(ID2DESC).format(id=item_id), desc))
    return out


def preference_examples(reasoning: Sequence[Mapping], index: Mapping[str, Sequence[str]],
                        rng: random.Random) -> list[dict]:
    """history → preference summary, from the synth stage's reasoning records (field ``preference``)."""
    out = []
    for rec in reasoning:
        if rec.get("preference"):
            history = ", ".join(_id(index, i) for i in rec["history"])
            out.append(_example("preference", ALIGN_SYSTEM, rng.choice(PREFERENCE).format(history=history),
                                rec["preference"]))
    return out


def reasoning_examples(reasoning: Sequence[Mapping], index: Mapping[str, Sequence[str]]) -> list[dict]:
    """D_reason: the reasoning-mode prompt → the synthesised reverse-reasoning response."""
    return [_example("reason", REASON_SYSTEM, history_question([_id(index, i) for i in rec["history"]]), rec["text"])
            for rec in reasoning]


def build_alignment(train: Sequence[Mapping], items: Mapping[str, Mapping[str, str]],
                    reasoning: Sequence[Mapping], index: Mapping[str, Sequence[str]], seed: int = 0,
                    max_seqrec: int | None = None) -> list[dict]:
    """All alignment examples; ``max_seqrec`` keeps a seeded random subset of the sequential examples."""
    rng = random.Random(seed)
    train = list(train)
    if max_seqrec is not None and len(train) > max_seqrec:
        train = rng.sample(train, max_seqrec)
    return seqrec_examples(train, index, rng) + item_examples(items, index, rng) + \
        preference_examples(reasoning, index, rng)
