"""The student model's prompts, shared by SFT data, RL prompts and evaluation so that all three match exactly.

Two inference modes (paper §4.3): *direct* (system prompt ``DIRECT_SYSTEM``, answer = the bare ID) and *reasoning*
(the paper's Appendix C system prompt, answer = ``<think>…</think>`` … ``<answer>ID</answer>``). Both use the
paper's Appendix C user turn. The teacher prompts of the synth stage live in :mod:`data_synth.prompts`.
"""

from __future__ import annotations

from typing import Sequence

from data_synth.prompts import FORWARD_QUESTION_V1, REASON_SYSTEM_V1

REASON_SYSTEM = REASON_SYSTEM_V1
DIRECT_SYSTEM = (
    "You are an AI recommendation model. Given a user's purchase history as item IDs in chronological order, "
    "answer with the ID of the item the user will most likely purchase next, and nothing else."
)

Messages = list[dict[str, str]]


def history_question(history_ids: Sequence[str]) -> str:
    """Paper Appendix C user turn for a history of ID strings (oldest first)."""
    return FORWARD_QUESTION_V1.format(history=", ".join(history_ids))


def direct_messages(history_ids: Sequence[str]) -> Messages:
    """Chat messages of a direct-mode query (system + user)."""
    return [{"role": "system", "content": DIRECT_SYSTEM}, {"role": "user", "content": history_question(history_ids)}]


def reason_messages(history_ids: Sequence[str]) -> Messages:
    """Chat messages of a reasoning-mode query (the paper's system prompt + user)."""
    return [{"role": "system", "content": REASON_SYSTEM}, {"role": "user", "content": history_question(history_ids)}]
