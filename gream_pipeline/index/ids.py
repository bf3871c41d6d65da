"""ID assignment with the conflict slot, and collision statistics (token grammar: :mod:`gream_pipeline.semantic_ids`).

Conflict-slot rule (docs/CONVENTIONS.md): items whose H level codes are unique get H tokens; items that share all
H codes with others get one more token from the next letter, numbered 0, 1, … in item-id order inside the group.
The resulting IDs are unique and prefix-free, so a trie over them has every ID at a leaf.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Mapping, Sequence

import numpy as np

# The token grammar lives in gream_pipeline.semantic_ids; re-exported here for existing importers.
from gream_pipeline.semantic_ids import format_token, id_tokens, level_letter, slot_size, vocabulary

__all__ = ["assign_ids", "collision_stats", "id_tokens", "level_letter", "slot_size", "vocabulary"]


def assign_ids(item_ids: Sequence[int], codes: np.ndarray, conflict_slot: bool = True) -> dict[int, list[str]]:
    """Item id → ID tokens; adds the conflict slot to items sharing all level codes (module docstring)."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for item, row in zip(item_ids, codes):
        groups[tuple(int(c) for c in row)].append(int(item))
    levels = codes.shape[1]
    index: dict[int, list[str]] = {}
    for key, members in groups.items():
        base = id_tokens(key)
        if len(members) == 1 or not conflict_slot:
            for item in members:
                index[item] = list(base)
        else:
            for rank, item in enumerate(sorted(members)):
                index[item] = base + [format_token(levels, rank)]
    return index


def collision_stats(index: Mapping[object, Sequence[str]], levels: int | None = None) -> dict:
    """Collision statistics of the first ``levels`` tokens of each ID (default: all but a conflict slot).

    ``collision_rate_before_slot`` is the fraction of items whose level codes are shared by at least one other item;
    ``max_items_per_code`` the size of the largest such group.
    """
    ids = list(index.values())
    if not ids:
        raise ValueError("empty index")
    if levels is None:
        levels = min(len(t) for t in ids)
    keys = [tuple(t[:levels]) for t in ids]
    counts = Counter(keys)
    colliding = sum(n for n in counts.values() if n > 1)
    per_level = [len({t[l] for t in ids}) for l in range(levels)]
    full = Counter(tuple(t) for t in ids)
    return {
        "num_items": len(ids),
        "levels": levels,
        "codes_used_per_level": per_level,
        "unique_codes_before_slot": len(counts),
        "collision_rate_before_slot": colliding / len(ids),
        "max_items_per_code": max(counts.values()),
        "items_with_conflict_slot": sum(1 for t in ids if len(t) > levels),
        "unique_after_slot": all(n == 1 for n in full.values()),
    }
