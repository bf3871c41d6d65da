"""RL prompt records from leave-one-out examples, and verl's RL parquet layout.

A prompt record is ``{"prompt": chat messages, "ground_truth": target ID string, "user": str}`` (plus
``"continued"``, the text of a final assistant message that the policy continues, in the ``continuation`` row format:
TRL prepends it to such a prompt's completions, and the reward takes it off again): the messages come
from :mod:`gream_pipeline.prompts` (the same text SFT and evaluation use), ``ground_truth`` is the target's ID string
``"<a_1><b_2><c_3><d_4>"`` as scored by :func:`reward_fns.srpo.residual_reward` (eq. 14). The records feed TRL's
GRPO trainer directly (``prompt`` is its conversational column; the other keys reach the reward function as keyword
arguments) and :func:`write_verl_parquet` turns them into the file verl's ``RLHFDataset`` reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from gream_pipeline.prompts import DEFAULT_SEQREC_FORMAT, direct_prompt_fn, reason_messages

Mode = Literal["direct", "reason"]
#: verl's ``ability`` column (free text; verl only carries it along).
ABILITY = "recommendation"


def _id_string(index: Mapping[str, Sequence[str]], item: int | str) -> str:
    try:
        return "".join(index[str(item)])
    except KeyError:
        raise KeyError(f"item {item!r} has no ID in the index") from None


def rl_prompts(examples: Iterable[Mapping], index: Mapping[str, Sequence[str]], mode: Mode = "direct",
               seqrec_format: str = DEFAULT_SEQREC_FORMAT) -> list[dict]:
    """One record per split example ``{"user","history":[int],"target":int}``.

    ``index`` maps item id (string key, as in ``index.json``) to its ID tokens. ``mode`` picks the prompt:
    ``direct`` (answer = bare ID; the query of the SFT row format ``seqrec_format``, ``sequence`` | ``per_target``,
    which must be the one the policy was trained with) or ``reason`` (the paper's Appendix C prompt, answer in
    ``<answer>`` tags).
    """
    if mode not in ("direct", "reason"):
        raise ValueError(f"mode must be 'direct' or 'reason', got {mode!r}")
    build = direct_prompt_fn(seqrec_format) if mode == "direct" else reason_messages
    records = []
    for ex in examples:
        history = [_id_string(index, i) for i in ex["history"]]
        prompt = build(history)
        record = {"prompt": prompt, "ground_truth": _id_string(index, ex["target"]), "user": str(ex["user"])}
        if prompt[-1]["role"] == "assistant":
            record["continued"] = prompt[-1]["content"]
        records.append(record)
    return records


def verl_rows(records: Iterable[Mapping], data_source: str = "gream") -> list[dict]:
    """Records → rows of verl's RL dataset (``data_source``, ``prompt``, ``ability``, ``reward_model``, ``extra_info``).

    verl's ``RLHFDataset`` reads ``prompt`` (``data.prompt_key``) as chat messages; its reward managers pass
    ``data_source``, ``reward_model["ground_truth"]`` and ``extra_info`` to ``compute_score``.
    """
    rows = []
    for i, rec in enumerate(records):
        rows.append(
            {
                "data_source": data_source,
                "prompt": [{"role": m["role"], "content": m["content"]} for m in rec["prompt"]],
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": str(rec["ground_truth"])},
                "extra_info": {"index": i, "user": str(rec.get("user", ""))},
            }
        )
    return rows


def write_verl_parquet(records: Iterable[Mapping], path: str | os.PathLike, data_source: str = "gream") -> int:
    """Write :func:`verl_rows` to ``path`` (parquet, atomic rename); returns the row count."""
    import pandas as pd

    rows = verl_rows(records, data_source)
    if not rows:
        raise ValueError("no records to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)  # inside a stage's output folder, committed atomically
    return len(rows)
