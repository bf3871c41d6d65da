"""Alignment tasks: only training targets, exact evaluation prompt for half the per_target seqrec examples, every
task present in both seqrec formats (the sequence format in depth: tests/test_sft_seqrec.py)."""

import random

from gream_pipeline.prompts import DIRECT_SYSTEM, REASON_SYSTEM, SEQUENCE_SYSTEM, direct_messages
from gream_pipeline.sft.tasks import build_alignment, count_targets, reasoning_examples, seqrec_examples

INDEX = {str(i): [f"<a_{i % 3}>", f"<b_{i}>", "<c_0>", f"<d_{i % 2}>"] for i in range(8)}
ITEMS = {str(i): {"title": f"Widget {i}", "description": f"A widget number {i}" if i % 2 else "", "brand": "",
                  "categories": ""} for i in range(8)}
TRAIN = [{"user": "u", "history": [0, 1], "target": 2}, {"user": "u", "history": [0, 1, 2], "target": 3}] * 50
REASONING = [{"user": "u", "history": [0, 1, 2, 3], "target": 4, "preference": "- likes widgets",
              "text": "<think>…</think> <answer><a_1><b_4><c_0><d_0></answer>"}]


def test_seqrec_uses_training_targets_and_the_eval_prompt():
    out = seqrec_examples(TRAIN, INDEX, random.Random(0))
    assert len(out) == 100
    assert {e["response"] for e in out} == {"".join(INDEX["2"]), "".join(INDEX["3"])}
    exact = [e for e in out if e["system"] == DIRECT_SYSTEM]
    assert 30 <= len(exact) <= 70  # about half
    msgs = direct_messages(["".join(INDEX["0"]), "".join(INDEX["1"])], "per_target")
    assert any(e["prompt"] == msgs[1]["content"] for e in exact)


def test_all_alignment_tasks_and_reasoning():
    out = build_alignment(TRAIN, ITEMS, REASONING, INDEX, seed=1, max_seqrec=10, seqrec_format="per_target")
    counts = {t: sum(e["task"] == t for e in out) for t in ("seqrec", "item2id", "id2title", "id2desc", "preference")}
    assert counts == {"seqrec": 10, "item2id": 8, "id2title": 8, "id2desc": 4, "preference": 1}
    titles = [e for e in out if e["task"] == "id2title"]
    assert titles[0]["prompt"].count("<a_0><b_0><c_0><d_0>") == 1 and titles[0]["response"] == "Widget 0"
    reason = reasoning_examples(REASONING, INDEX)
    assert reason[0]["system"] == REASON_SYSTEM and "<a_0><b_0><c_0><d_0>, <a_1><b_1><c_0><d_1>" in reason[0]["prompt"]
    assert build_alignment(TRAIN, ITEMS, REASONING, INDEX, seed=1, max_seqrec=10,
                           seqrec_format="per_target") == out  # seeded


def test_sequence_format_rows():
    """One multi-turn row per user window: user u (items 0..4, training items 0..2 → examples t=1,2) and v."""
    train = [{"user": "u", "history": [0], "target": 1}, {"user": "u", "history": [0, 1], "target": 2},
             {"user": "v", "history": [5], "target": 6}]
    out = build_alignment(train, ITEMS, REASONING, INDEX, seed=1)
    seq = [e for e in out if e["task"] == "seqrec"]
    assert [e["user"] for e in seq] == ["u", "v"] and all(e["system"] == SEQUENCE_SYSTEM for e in seq)
    assert [t["value"] for t in seq[0]["conversations"]] == ["next", "".join(INDEX["0"]), "next", "".join(INDEX["1"]),
                                                             "next", "".join(INDEX["2"])]
    assert [count_targets(e) for e in seq] == [3, 2]
    counts = {t: sum(e["task"] == t for e in out) for t in ("item2id", "id2title", "id2desc", "preference")}
    assert counts == {"item2id": 8, "id2title": 8, "id2desc": 4, "preference": 1}
