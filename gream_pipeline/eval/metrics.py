"""Pure ranking / sampling metrics for GREAM evaluation (paper §6.1, Table 2). No framework imports.

Direct mode (paper: "Recall@K and NDCG@K"): one relevant item per user (leave-one-out), so
Recall@K = 1[rank < K] and NDCG@K = 1[rank < K] / log2(rank + 2) with a 0-based rank (ideal DCG = 1).

Reasoning mode (paper: Pass@K, same estimator as the SRPO sparse bonus, eq. 15):
pass@k = 1 − C(n−c, k) / C(n, k) for c correct answers among n samples (unbiased, Chen et al. 2021).

Item-level variant. The paper scores *IDs*: a predicted ID equal to the target item's ID is a hit,
so when several items share one ID (an index without the conflict slot, e.g. the LETTER Instruments reference index:
9,897 IDs for 9,922 items) predicting it is a hit for every item that carries it. The item-level rule resolves each
predicted ID to exactly one item, the way the conflict slot would: an ID held by one item names that item; an ID held
by a group of items names the group's first item in item-id order (the item that `<e_0>` marks, CONVENTIONS.md), so
the other members of the group can never be hit. Under the project's conflict-slot index every ID names one item and
both variants agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def hit_rank(ranked: Sequence[str], target: str) -> int | None:
    """0-based position of `target` in `ranked` (first occurrence), or None."""
    for i, x in enumerate(ranked):
        if x == target:
            return i
    return None


def recall_at_k(ranked: Sequence[str], target: str, k: int) -> float:
    """Recall@K for a single relevant item: 1 if the target is among the first k predictions."""
    r = hit_rank(ranked[:k], target)
    return 0.0 if r is None else 1.0


def ndcg_at_k(ranked: Sequence[str], target: str, k: int) -> float:
    """NDCG@K for a single relevant item: 1/log2(rank+2) if rank < k (ideal DCG is 1)."""
    r = hit_rank(ranked[:k], target)
    return 0.0 if r is None else 1.0 / math.log2(r + 2)


def ranking_metrics(rankings: Sequence[Sequence[str]], targets: Sequence[str],
                    ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean recall@k and ndcg@k over users (keys `recall@k`, `ndcg@k`)."""
    if len(rankings) != len(targets):
        raise ValueError("rankings and targets differ in length")
    ks = list(ks)
    n = max(len(targets), 1)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = sum(recall_at_k(r, t, k) for r, t in zip(rankings, targets)) / n
    for k in ks:
        out[f"ndcg@{k}"] = sum(ndcg_at_k(r, t, k) for r, t in zip(rankings, targets)) / n
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 − C(n−c, k)/C(n, k) from c correct among n samples (paper eq. 15)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Sequence[tuple[int, int]], ks: Iterable[int] = DEFAULT_KS) -> dict[str, float | None]:
    """Mean pass@k over users from (n, c) pairs; None for k larger than some user's n."""
    out: dict[str, float | None] = {}
    for k in ks:
        if not counts or any(n < k for n, _ in counts):
            out[f"pass@{k}"] = None
            continue
        out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
    return out


def resolve_id_owner(id_to_items: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """ID string → the one item it names under the conflict-slot rule (lowest item id of a shared ID)."""
    return {sid: min(items, key=_item_key) for sid, items in id_to_items.items() if items}


def item_level_ranking(ranked_ids: Sequence[str], owner: Mapping[str, str]) -> list[str]:
    """Map a ranked list of ID strings to the items they resolve to (unknown IDs map to '')."""
    return [owner.get(sid, "") for sid in ranked_ids]


def _item_key(item: str) -> tuple[int, int | str]:
    """Item-id order: numeric ids numerically, others lexicographically after them."""
    return (0, int(item)) if item.isdigit() else (1, item)


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (z=1.96) Wilson score interval of a Bernoulli mean such as Recall@K over ``n`` users."""
    if n <= 0:
        return (0.0, 0.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], iters: int = 2000, seed: int = 0,
                     alpha: float = 0.05) -> dict[str, float]:
    """Mean difference ``mean(a) − mean(b)`` of per-user scores on the same users with its percentile bootstrap
    interval (users resampled with replacement, the same resample for both)."""
    import random

    if len(a) != len(b) or not a:
        raise ValueError("paired bootstrap needs two equally long, non-empty score lists")
    n, rng = len(a), random.Random(seed)
    diffs = [x - y for x, y in zip(a, b)]
    stats = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(iters))
    lo, hi = stats[int(alpha / 2 * iters)], stats[min(iters - 1, int((1 - alpha / 2) * iters))]
    return {"diff": sum(diffs) / n, "lo": lo, "hi": hi, "n": n}
