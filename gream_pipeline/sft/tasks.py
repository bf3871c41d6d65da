"""Alignment tasks D_align and reasoning samples D_reason (paper §4.1–4.3) as chat examples.

Alignment tasks, several phrasings each:

- ``seqrec`` (sequential recommendation) from *training* items only (a user's sequence minus its validation and
  test items; never those two), in one of two row formats (``sft.seqrec_format``, :mod:`gream_pipeline.prompts`):

  * ``sequence`` (default): one multi-turn row per window of a user's training sequence, system
    :data:`~gream_pipeline.prompts.SEQUENCE_SYSTEM` then (user ``next``, assistant ID) per item
    (:func:`seqrec_sequence_examples`). Every assistant turn is a target, so a user is encoded once instead of n−3
    times. Windows hold at most ``max_history + 1`` items (the query's history length + its target) and are cut
    from the end, so a user's most recent items form one full window.
  * ``per_target`` (the paper's rows): history IDs → next ID, one row per training target s[1..n-3]; half of the
    rows use the exact evaluation prompt (:func:`gream_pipeline.prompts.direct_messages` in that format), the rest
    other phrasings (:func:`seqrec_examples`).

- ``item2id``: title (or title + description) → ID;  ``id2title`` / ``id2desc``: ID → title / description;
- ``preference``: history IDs → the user's preference summary (from the synth stage's reasoning records).

Reasoning samples: the paper's system prompt + history question → the synthesised ``<think>…<answer>`` response.
An example is ``{"task", "system", "prompt", "response"}`` (one turn) or ``{"task", "system", "conversations"}``
(sharegpt turns ``{"from": "human"|"gpt", "value"}``, alternating, human first: the ``sequence`` rows); the
LLaMA-Factory glue formats both.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from gream_pipeline.prompts import (CONTINUATION, DEFAULT_SEQREC_FORMAT, PER_TARGET, REASON_SYSTEM, SEQUENCE,
                                    check_seqrec_format, continuation_messages,
                                    direct_messages, history_question, sequence_messages)

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
_ROLE_TAG = {"user": "human", "assistant": "gpt"}


def _id(index: Mapping[str, Sequence[str]], item: int | str) -> str:
    return "".join(index[str(item)])


def _example(task: str, system: str, prompt: str, response: str) -> dict:
    return {"task": task, "system": system, "prompt": prompt, "response": response}


def seqrec_examples(train: Sequence[Mapping], index: Mapping[str, Sequence[str]], rng: random.Random) -> list[dict]:
    """``per_target`` rows: history → next ID, one per training example; half use the exact evaluation prompt
    (``direct_messages(history, "per_target")``), the rest other phrasings."""
    out = []
    for ex in train:
        history = [_id(index, i) for i in ex["history"]]
        if rng.random() < 0.5:
            system, user = (m["content"] for m in direct_messages(history, PER_TARGET))
            out.append(_example("seqrec", system, user, _id(index, ex["target"])))
        else:
            prompt = rng.choice(SEQREC_VARIANTS).format(history=", ".join(history))
            out.append(_example("seqrec", ALIGN_SYSTEM, prompt, _id(index, ex["target"])))
    return out


def training_sequences_from_examples(train: Iterable[Mapping]) -> dict[str, list[int]]:
    """Each user's training sequence rebuilt from per-target training examples ``{"user","history","target"}``
    (``train.jsonl``: a user's examples are its prefixes in order, :func:`gream_pipeline.data.split.leave_one_out`).

    The first example's history followed by every target: with the full training split this is exactly
    :func:`gream_pipeline.data.split.training_sequences` (s[:n-2], users with n ≤ 3 have no training example and
    are absent), and it only ever contains items of training examples, never a validation or test target. Each
    example must extend its user's sequence (its history is a suffix of the sequence so far), else ValueError."""
    out: dict[str, list[int]] = {}
    for ex in train:
        user, history, target = str(ex["user"]), [int(i) for i in ex["history"]], int(ex["target"])
        seq = out.get(user)
        if seq is None:
            out[user] = history + [target]
        elif history and seq[-len(history):] == history:
            seq.append(target)
        else:
            raise ValueError(f"training examples of user {user!r} are not its consecutive prefixes (history "
                             f"{history[-3:]}… does not end the sequence so far …{seq[-3:]}); pass the whole "
                             f"training split in its order")
    return out


def sequence_windows(seq: Sequence[int], max_items: int) -> list[list[int]]:
    """Cut ``seq`` into consecutive, non-overlapping windows of at most ``max_items`` items, from the end: the most
    recent ``max_items`` items form the last window, the remainder (possibly shorter) the first."""
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    seq = list(seq)
    ends = list(range(len(seq), 0, -max_items))
    return [seq[max(0, e - max_items):e] for e in reversed(ends)]


def user_windows(sequences: Mapping[str, Sequence[int]], index: Mapping[str, Sequence[str]],
                 max_history: int) -> list[tuple[str, list[str]]]:
    """(user, window of ID strings) for every user with a training target (a training sequence of ≥ 2 items):
    windows of at most ``max_history + 1`` items (:func:`sequence_windows`), so every training item is in one."""
    if max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    return [(str(user), [_id(index, i) for i in window]) for user, seq in sequences.items() if len(seq) >= 2
            for window in sequence_windows(seq, max_history + 1)]


def seqrec_sequence_examples(sequences: Mapping[str, Sequence[int]], index: Mapping[str, Sequence[str]],
                             max_history: int) -> list[dict]:
    """``sequence`` rows: one row ``{"task": "seqrec", "system", "conversations", "user"}`` per window
    (:func:`user_windows`) built by :func:`gream_pipeline.prompts.sequence_messages`. Every item of the sequence is
    the target of exactly one assistant turn; the first turn of a window predicts its item from no history."""
    out = []
    for user, window in user_windows(sequences, index, max_history):
        messages = sequence_messages(window)
        out.append({"task": "seqrec", "system": messages[0]["content"], "user": user,
                    "conversations": [{"from": _ROLE_TAG[m["role"]], "value": m["content"]} for m in messages[1:]]})
    return out


def seqrec_continuation_examples(sequences: Mapping[str, Sequence[int]], index: Mapping[str, Sequence[str]],
                                 max_history: int) -> list[dict]:
    """``continuation`` rows: one single-turn row per window (:func:`user_windows`) whose response is the window's
    IDs back to back (:func:`gream_pipeline.prompts.continuation_messages`); ``targets`` counts them."""
    out = []
    for user, window in user_windows(sequences, index, max_history):
        system, prompt, response = (m["content"] for m in continuation_messages(window))
        out.append({**_example("seqrec", system, prompt, response), "user": user, "targets": len(window)})
    return out


def count_targets(example: Mapping) -> int:
    """Supervised next-item targets of an example: its ``targets`` field, else its assistant turns."""
    if "targets" in example:
        return int(example["targets"])
    conv = example.get("conversations")
    return 1 if conv is None else sum(turn.get("from") == "gpt" for turn in conv)


def example_text(example: Mapping) -> str:
    """The text of an example laid out as the chat template renders it, minus the special tokens (role line, then
    content, per message): the scratch model's tokenizer corpus, so that BPE also learns the role names and the
    ``sequence`` marker as they occur in training (``user``, ``assistant``, ``next`` at the start of a line)."""
    conv = example.get("conversations")
    turns = ([("user", example["prompt"]), ("assistant", example["response"])] if conv is None
             else [("user" if t["from"] == "human" else "assistant", t["value"]) for t in conv])
    system = example.get("system") or ""
    return "\n".join(([f"system\n{system}"] if system else []) + [f"{role}\n{value}" for role, value in turns])


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
                    max_seqrec: int | None = None, seqrec_format: str = DEFAULT_SEQREC_FORMAT,
                    max_history: int = 20) -> list[dict]:
    """All alignment examples. ``train`` is the whole training split in its order (``train.jsonl``);
    ``seqrec_format`` picks the sequential rows (``sequence``: windows of at most ``max_history + 1`` items of each
    user's training sequence; ``per_target``: one row per training example). ``max_seqrec`` keeps a seeded random
    subset of the sequential *rows* (``per_target``: targets; ``sequence``: windows, each holding up to
    ``max_history + 1`` targets)."""
    rng = random.Random(seed)
    if check_seqrec_format(seqrec_format) in (SEQUENCE, CONTINUATION):
        build = seqrec_sequence_examples if seqrec_format == SEQUENCE else seqrec_continuation_examples
        seqrec = build(training_sequences_from_examples(train), index, max_history)
        if max_seqrec is not None and len(seqrec) > max_seqrec:
            keep = set(rng.sample(range(len(seqrec)), max_seqrec))
            seqrec = [e for k, e in enumerate(seqrec) if k in keep]
    else:
        train = list(train)
        if max_seqrec is not None and len(train) > max_seqrec:
            train = rng.sample(train, max_seqrec)
        seqrec = seqrec_examples(train, index, rng)
    return seqrec + item_examples(items, index, rng) + preference_examples(reasoning, index, rng)
