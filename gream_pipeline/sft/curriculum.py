"""Curriculum batch order for the hybrid SFT (paper §4.3, "Hybrid SFT with Curriculum Learning").

Pure and seeded (standard library only). D_SFT = D_align ∪ D_reason is cut into homogeneous batches
B_align (N_align batches) and B_reason (N_reason batches). For every epoch but the last, the alignment batches are
processed in a (seeded, shuffled) order and after the i-th alignment batch the next reasoning batch is inserted
with probability

    p_insert(i) = min(1, γ · (i / N_align) · (N_reason / N_align))        (paper §4.3, γ = 1.5)

reasoning batches that were not inserted are appended at the end of the epoch. The last epoch is uniform mixing:
a seeded shuffle of all batches of both types.

**i is 1-based** (i = 1 … N_align: "after the i-th alignment batch", the paper's b_{align,i}), so the first
alignment batch already has a small non-zero insertion probability and the last one has min(1, γ·N_reason/N_align).
For γ = 1.5 and no cap this interleaves Σ_i p(i) = γ·N_reason·(N_align+1)/(2·N_align) ≈ 75 % of the reasoning
batches; the rest are appended. A Bernoulli draw is made only while reasoning batches remain.

**N counts batches of rows, not targets.** A batch is ``global batch`` rows of one type whatever each row holds;
with ``sft.seqrec_format=sequence`` an alignment row carries a whole window of a user's sequence (several
supervised targets), so the same N_align covers more targets than with one target per row. The equation is applied
to batch counts unchanged (the paper's definition).
"""

from __future__ import annotations

import random

ALIGN = "align"
REASON = "reason"
Batch = tuple[str, int]


def insert_probability(i: int, n_align: int, n_reason: int, gamma: float = 1.5) -> float:
    """p_insert(i) = min(1, γ·(i/N_align)·(N_reason/N_align)) (paper §4.3), i 1-based in 1..N_align."""
    if n_align <= 0:
        raise ValueError(f"p_insert needs at least one alignment batch (n_align={n_align})")
    if not 1 <= i <= n_align:
        raise ValueError(f"alignment batch index i={i} outside 1..{n_align} (i is 1-based)")
    if n_reason < 0 or gamma < 0:
        raise ValueError(f"n_reason and gamma must be >= 0 (got {n_reason}, {gamma})")
    return min(1.0, gamma * (i / n_align) * (n_reason / n_align))


def curriculum_epoch(align: list[int], reason: list[int], gamma: float, rng: random.Random) -> list[Batch]:
    """One curriculum epoch over already-ordered batch indices: align batches with reasoning insertions, then
    the reasoning batches left over."""
    out: list[Batch] = []
    pending = list(reason)
    n_align, n_reason = len(align), len(reason)
    for i, j in enumerate(align, start=1):
        out.append((ALIGN, j))
        if pending and rng.random() < insert_probability(i, n_align, n_reason, gamma):
            out.append((REASON, pending.pop(0)))
    out.extend((REASON, j) for j in pending)
    return out


def uniform_epoch(align: list[int], reason: list[int], rng: random.Random) -> list[Batch]:
    """Uniform mixing: a seeded shuffle of all batches of both types (paper §4.3, final epoch)."""
    out = [(ALIGN, j) for j in align] + [(REASON, j) for j in reason]
    rng.shuffle(out)
    return out


def schedule(n_align: int, n_reason: int, epochs: int = 3, gamma: float = 1.5, seed: int = 0) -> list[list[Batch]]:
    """Per epoch, the ordered batch list of ``("align", j)`` / ``("reason", j)`` (j = 0-based batch index of its
    type). Epochs 1..E−1 follow the p_insert curriculum, epoch E is uniform mixing; within each type the batch
    order is reshuffled every epoch. Every batch appears exactly once per epoch. Deterministic in ``seed``."""
    if n_align < 0 or n_reason < 0:
        raise ValueError(f"batch counts must be >= 0 (got n_align={n_align}, n_reason={n_reason})")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1 (got {epochs})")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0 (got {gamma})")
    rng = random.Random(seed)
    plan: list[list[Batch]] = []
    for epoch in range(1, epochs + 1):
        align, reason = list(range(n_align)), list(range(n_reason))
        rng.shuffle(align)
        rng.shuffle(reason)
        if epoch < epochs:
            plan.append(curriculum_epoch(align, reason, gamma, rng))
        else:
            plan.append(uniform_epoch(align, reason, rng))
    return plan


def reason_fraction(kinds: list[str], window: int) -> list[float]:
    """Trailing moving average of the reasoning indicator over steps (for the curriculum plot)."""
    window = max(1, window)
    out, acc = [], 0
    for t, kind in enumerate(kinds):
        acc += kind == REASON
        if t >= window:
            acc -= kinds[t - window] == REASON
        out.append(acc / min(t + 1, window))
    return out
