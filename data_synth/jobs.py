"""The two synth jobs as lists of ``Task``s: item enrichment (§4.1) and reverse reasoning (§4.2).

A task carries its store key, the chat messages, a validator (text → parsed fields, or ``Invalid``) and its offline
template generator. Store key = ``make_key(prompt_version, model, {"kind", "id", "messages"})``: the messages contain
all inputs (metadata, history/target IDs), so changing the data, the index or the prompt gives a new key. ``model``
is the endpoint's model name online and the template style's version (``template-v1``, …) offline, so LLM and
template records (and the two template styles) never collide.

Reasoning users: one sample per training user, from the user's *last* training example in ``train_examples`` order
(the data stage writes each user's examples chronologically, so that is the longest history → latest target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from . import offline, prompts
from .config import SynthConfig
from .store import make_key
from .validate import Limits, validate_enrichment, validate_reasoning


@dataclass(frozen=True)
class Task:
    key: str
    kind: str  # "enrich" | "reason"
    eid: str  # item id (enrich) or user id (reason)
    messages: list[dict]
    check: Callable[[str], dict]  # validated fields to store; raises validate.Invalid
    template: Callable[[], str]
    context: dict  # echoed into reasoning.jsonl (user, history, target)


def model_tag(cfg: SynthConfig) -> str:
    return offline.style(cfg.offline_style).version if cfg.is_offline else cfg.model


def last_example_per_user(train_examples: Sequence[Mapping]) -> list[Mapping]:
    """The last training example of each user, users in order of first appearance."""
    last: dict[str, Mapping] = {}
    for ex in train_examples:
        last[str(ex["user"])] = ex
    return list(last.values())


def reason_tasks(items: Mapping[str, Mapping], train_examples: Sequence[Mapping], index: Mapping[str, Sequence[str]],
                 cfg: SynthConfig, skipped: dict[str, int]) -> list[Task]:
    """One reverse-reasoning task per training user (module docstring); users with unindexed items are skipped."""
    id_str = {str(k): "".join(v) for k, v in index.items()}
    known = frozenset(id_str.values())
    limits, version, model = cfg.limits, cfg.reason_prompt_version, model_tag(cfg)
    examples = last_example_per_user(train_examples)
    if cfg.max_users is not None:
        examples = examples[:cfg.max_users]
    tasks = []
    for ex in examples:
        history, target = [int(i) for i in ex["history"]], int(ex["target"])
        if not history or any(str(i) not in id_str for i in (*history, target)):
            skipped["missing_id"] = skipped.get("missing_id", 0) + 1
            continue
        h_ids, t_id = [id_str[str(i)] for i in history], id_str[str(target)]
        h_meta, t_meta = [items.get(str(i), {}) for i in history], items.get(str(target), {})
        messages = prompts.reason_messages(h_ids, h_meta, t_id, t_meta, version, cfg.desc_chars)
        user = str(ex["user"])
        tasks.append(Task(
            key=make_key(version, model, {"kind": "reason", "id": user, "messages": messages}),
            kind="reason", eid=user, messages=messages,
            check=_reason_check(h_ids, t_id, known, limits, history),
            template=_bind(offline.synth_reasoning, h_ids, h_meta, t_id, t_meta, cfg.offline_style),
            context={"user": user, "history": history, "target": target}))
    return tasks


def _reason_check(h_ids: list[str], t_id: str, known: frozenset, limits: Limits, history: list[int]):
    pos = {iid: item for iid, item in zip(h_ids, history)}

    def check(text: str) -> dict:
        parsed = validate_reasoning(text, h_ids, t_id, known, limits)
        return {"preference": parsed.preference, "rewritten_history": [pos[i] for i in parsed.rewritten]}
    return check


def _bind(fn, *args):
    return lambda: fn(*args)


def enrich_tasks(items: Mapping[str, Mapping], cfg: SynthConfig, skipped: dict[str, int]) -> list[Task]:
    """One description task per item that has any text (items without text are counted as skipped)."""
    limits, version, model = cfg.limits, cfg.enrich_prompt_version, model_tag(cfg)
    ids = sorted(items, key=lambda k: (len(str(k)), str(k)))
    if cfg.max_items is not None:
        ids = ids[:cfg.max_items]
    tasks = []
    for iid in ids:
        meta = items[iid]
        if not offline.has_text(meta):
            skipped["no_text"] = skipped.get("no_text", 0) + 1
            continue
        messages = prompts.enrich_messages(meta, version)
        tasks.append(Task(
            key=make_key(version, model, {"kind": "enrich", "id": str(iid), "messages": messages}),
            kind="enrich", eid=str(iid), messages=messages,
            check=lambda text, _l=limits: {"description": validate_enrichment(text, _l)},
            template=_bind(offline.synth_description, meta),
            context={"item": str(iid)}))
    return tasks
