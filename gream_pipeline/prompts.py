"""The student model's prompts, shared by SFT data, RL prompts and evaluation so that all three match exactly.

Two inference modes (paper §4.3): *direct* (answer = the bare ID) and *reasoning* (the paper's Appendix C system
prompt, answer = ``<think>…</think>`` … ``<answer>ID</answer>``). The teacher prompts of the synth stage live in
:mod:`data_synth.prompts`.

**Direct mode has two row formats** (``sft.seqrec_format``), and the direct-mode query must be built with the same
one the model was trained on:

- ``sequence`` (default): the conversation *is* the user's history. A short system line, then one turn pair per item,
  user ``"next"`` → assistant ``ID(item)``, oldest first. An SFT row (:func:`sequence_messages`) carries a whole
  window of a user's training sequence, so every item of it is a supervised target (LLaMA-Factory puts loss on
  every assistant turn). The query for a history h is the same messages for h plus a final user ``"next"``
  (:func:`direct_messages`): rendered with the chat template and the generation prompt, its tokens are exactly the
  prefix of a training row that precedes the next ID, so the trie beam decodes the next assistant turn. A plain
  chat template (or an OpenAI-compatible chat API, verl's chat-template prompts) expresses it.
- ``continuation``: the assistant turn *is* the user's history. A short system line and a fixed user turn, then one
  assistant turn holding the window's IDs back to back (:func:`continuation_messages`), so every ID is a target and
  no chat markup separates them. The query ends with that assistant turn holding the history, to be continued
  (rendered as the generation prompt followed by the history IDs: ``continue_final_message`` in transformers, vLLM
  and SGLang's chat APIs, and in TRL).
- ``per_target`` (the paper's rows): system ``DIRECT_SYSTEM`` + the paper's Appendix C user turn listing the
  history → one ID. One row per training target.

Histories are the most recent ``data.max_history`` items in both formats (the split already truncates them; SFT
windows hold at most ``max_history + 1`` items, so a window's last target sees ``max_history`` items like a query).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from data_synth.prompts import FORWARD_QUESTION_V1, REASON_SYSTEM_V1

REASON_SYSTEM = REASON_SYSTEM_V1
DIRECT_SYSTEM = (
    "You are an AI recommendation model. Given a user's purchase history as item IDs in chronological order, "
    "answer with the ID of the item the user will most likely purchase next, and nothing else."
)
#: ``sequence`` format: the system line and the user turn before every item (kept short: they are paid per row /
#: per item, and a constant carries no information for the model).
SEQUENCE_SYSTEM = "Answer each next with the ID of the user's next item."
NEXT = "next"

#: ``continuation`` format: the system line and the user turn of every row and query.
CONTINUATION_SYSTEM = "Continue the user's sequence of item IDs."
HISTORY = "history"

SEQUENCE, CONTINUATION, PER_TARGET = "sequence", "continuation", "per_target"
SEQREC_FORMATS = (SEQUENCE, CONTINUATION, PER_TARGET)
DEFAULT_SEQREC_FORMAT = SEQUENCE

Messages = list[dict[str, str]]


def check_seqrec_format(fmt: str) -> str:
    """``fmt`` if it names a row format (``sequence`` | ``per_target``), else ValueError."""
    if fmt not in SEQREC_FORMATS:
        raise ValueError(f"seqrec_format must be one of {SEQREC_FORMATS}, got {fmt!r}")
    return fmt


def history_question(history_ids: Sequence[str]) -> str:
    """Paper Appendix C user turn for a history of ID strings (oldest first)."""
    return FORWARD_QUESTION_V1.format(history=", ".join(history_ids))


def sequence_messages(item_ids: Sequence[str], system: str = SEQUENCE_SYSTEM) -> Messages:
    """``sequence`` format: system + (user ``NEXT``, assistant ID) for every item, oldest first. As an SFT row every
    assistant turn is a target; as a query prefix (:func:`direct_messages`) the turns are the history."""
    messages = [{"role": "system", "content": system}]
    for item in item_ids:
        messages += [{"role": "user", "content": NEXT}, {"role": "assistant", "content": item}]
    return messages


def continuation_messages(item_ids: Sequence[str]) -> Messages:
    """``continuation`` format: system + user ``HISTORY`` + one assistant turn with the IDs back to back. As an SFT
    row every ID is a target; as a query its assistant turn is continued (:func:`direct_messages`)."""
    return [{"role": "system", "content": CONTINUATION_SYSTEM}, {"role": "user", "content": HISTORY},
            {"role": "assistant", "content": "".join(item_ids)}]


def direct_messages(history_ids: Sequence[str], fmt: str = DEFAULT_SEQREC_FORMAT,
                    max_history: int | None = None) -> Messages:
    """Chat messages of a direct-mode query for ``history_ids`` (oldest first) in row format ``fmt``; render them
    with the chat template and the generation prompt. ``max_history`` keeps only the most recent items (histories
    from the split are already truncated to ``data.max_history``)."""
    history = list(history_ids)[-max_history:] if max_history else list(history_ids)
    if check_seqrec_format(fmt) == SEQUENCE:
        return sequence_messages(history) + [{"role": "user", "content": NEXT}]
    if fmt == CONTINUATION:
        return continuation_messages(history)
    return [{"role": "system", "content": DIRECT_SYSTEM}, {"role": "user", "content": history_question(history)}]


def sequence_direct_messages(history_ids: Sequence[str]) -> Messages:
    """:func:`direct_messages` in the ``sequence`` format (one-argument prompt function for evaluation)."""
    return direct_messages(history_ids, SEQUENCE)


def continuation_direct_messages(history_ids: Sequence[str]) -> Messages:
    """:func:`direct_messages` in the ``continuation`` format (one-argument prompt function for evaluation)."""
    return direct_messages(history_ids, CONTINUATION)


def per_target_direct_messages(history_ids: Sequence[str]) -> Messages:
    """:func:`direct_messages` in the ``per_target`` (paper) format (one-argument prompt function for evaluation)."""
    return direct_messages(history_ids, PER_TARGET)


#: ``EvalConfig.direct_prompt_fn`` value ("module:function", picklable for Ray workers) per row format.
DIRECT_PROMPT_FNS = {SEQUENCE: f"{__name__}:sequence_direct_messages",
                     CONTINUATION: f"{__name__}:continuation_direct_messages",
                     PER_TARGET: f"{__name__}:per_target_direct_messages"}


def direct_prompt_fn(fmt: str) -> Callable[[Sequence[str]], Messages]:
    """The one-argument direct-mode prompt function of row format ``fmt``."""
    return {SEQUENCE: sequence_direct_messages, CONTINUATION: continuation_direct_messages,
            PER_TARGET: per_target_direct_messages}[check_seqrec_format(fmt)]


def reason_messages(history_ids: Sequence[str]) -> Messages:
    """Chat messages of a reasoning-mode query (the paper's system prompt + user); the same in both row formats."""
    return [{"role": "system", "content": REASON_SYSTEM}, {"role": "user", "content": history_question(history_ids)}]
