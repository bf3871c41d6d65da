"""Most-popular on exactly the users a gream evaluation scored, so the two can be compared user by user.

Popularity counts every interaction that precedes the evaluated target in its user's sequence — for the test split
each sequence minus its last item, for the validation split minus its last two (leave-one-out) — ties broken by
item id. The ranking is global and full (every item of the catalogue), as in ``bench/baselines/most_popular.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from gream_pipeline.eval.metrics import ranking_metrics

HOLDOUT = {"test": 1, "valid": 2}


def popularity_order(sequences: Mapping[str, Sequence[int]], holdout: int) -> list[str]:
    """Item ids (strings) by decreasing count over each sequence minus its last ``holdout`` items."""
    counts: Counter = Counter()
    items: set[int] = set()
    for seq in sequences.values():
        counts.update(seq[: max(len(seq) - holdout, 0)])
        items.update(seq)
    return [str(i) for i in sorted(items, key=lambda i: (-counts[i], i))]


def most_popular(sequences: Mapping[str, Sequence[int]], examples: Sequence[Mapping], split: str,
                 ks: Sequence[int]) -> tuple[dict[str, float], list[str]]:
    """(Recall/NDCG@K of most-popular on ``examples``, its top-max(ks) list)."""
    top = popularity_order(sequences, HOLDOUT[split])[: max(ks)]
    return ranking_metrics([top] * len(examples), [str(ex["target"]) for ex in examples], ks), top
