"""SRPO math (GREAM paper §5, eqs. 13–22): residual-sensitive reward and bonus-calibrated group advantage.

Pure numpy, no framework import (verl glue lives in :mod:`reward_fns.verl_plugin`).

Conventions (docs/CONVENTIONS.md): an item ID is a list of tokens ``<a_12><b_200>…``; ``H`` is the number of tokens
of the *target* ID (every position counts, including a conflict slot ``<e_…>``), so exact match ⇔ reward 1.
Rollouts are parsed by :func:`gream_pipeline.semantic_ids.parse_answer` (re-exported here), the rule evaluation uses.

Group statistics follow verl 0.9.1's GRPO (``core_algos.compute_grpo_outcome_advantage`` and its vectorised twin):
the group std is the *unbiased* sample std (``torch.std``, ddof = 1), the normaliser is ``std + eps``, and a group
with a single rollout uses mean 0 and std 1. With these conventions SRPO with a zero bonus equals verl's GRPO.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# parse_answer is re-exported: the reward and evaluation share ONE answer rule (stdlib-only module).
from gream_pipeline.semantic_ids import TOKEN_RE, parse_answer, parse_tokens

__all__ = [
    "DEFAULT_BETA", "DEFAULT_K", "ID_TOKEN_RE", "grpo_advantages", "grpo_advantages_batched", "id_tokens",
    "keep_group", "keep_mask", "parse_answer", "prefix_len", "residual_reward", "srpo_advantages",
    "srpo_advantages_batched", "success_prob",
]

#: Canonical ID token (the grammar and the answer rule live in :mod:`gream_pipeline.semantic_ids`).
ID_TOKEN_RE = TOKEN_RE

DEFAULT_BETA = 0.5
#: The paper does not state k (eq. 15). k = G would make the bonus vanish (ρ ∈ {0, 1} ⇒ σ = 0) and k = 1 turns it into
#: a binary-GRPO advantage on exact hits; we default to k = 4 (with G = 10, ρ saturates only when c ≥ 7).
DEFAULT_K = 4


# ----------------------------------------------------------------------------------------------- parsing


def id_tokens(ground_truth: object) -> list[str]:
    """Target ID tokens from an ID string ``"<a_1><b_2>…"`` or a sequence of tokens (joined, then tokenised)."""
    if isinstance(ground_truth, str):
        text = ground_truth
    elif isinstance(ground_truth, Sequence | np.ndarray):
        text = "".join(str(t) for t in ground_truth)
    else:
        raise TypeError(f"ground_truth must be an ID string or a token sequence, got {type(ground_truth).__name__}")
    return parse_tokens(text)


# ----------------------------------------------------------------------------------------------- reward (13–14)


def prefix_len(pred: Sequence[str] | None, target: Sequence[str]) -> int:
    """Longest common prefix ℓ ∈ {0, …, H} of ``pred`` and ``target`` over the target's H positions (eq. 13).

    Rule for length mismatch: ℓ = H only when ``pred == target``. A prediction that matches all H target positions
    but carries extra tokens is a different (invalid) ID and gets ℓ = H − 1. ``pred is None`` (unparseable) → 0.
    """
    h = len(target)
    if h == 0:
        raise ValueError("target ID must have at least one token")
    if pred is None:
        return 0
    ell = 0
    for p, t in zip(pred, target):
        if p != t:
            break
        ell += 1
    if ell == h and len(pred) != h:
        ell = h - 1
    return ell


def residual_reward(pred: Sequence[str] | None, target: Sequence[str], beta: float = DEFAULT_BETA) -> float:
    """Residual-sensitive verifiable reward r_rs = (ℓ / H)^β (eq. 14), H = len(target); equals 1 ⇔ pred == target."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (paper: β ∈ (0, 1]), got {beta}")
    return float((prefix_len(pred, target) / len(target)) ** beta)


# ----------------------------------------------------------------------------------------------- advantages


def _comb(n: int, m: int) -> int:
    """Binomial coefficient with C(n, m) = 0 outside 0 ≤ m ≤ n."""
    return math.comb(n, m) if 0 <= m <= n else 0


def success_prob(c: int, g: int, k: int) -> float:
    """ρ(c; G, k) = 1 − C(G−c, k) / C(G, k) (eq. 15), k clipped to [1, G]."""
    k = min(max(int(k), 1), g)
    return 1.0 - _comb(g - c, k) / _comb(g, k)


def _group_norm(r: np.ndarray, eps: float) -> np.ndarray:
    """(r − mean) / (std + eps) with unbiased std; a single rollout uses mean 0, std 1 (verl's convention)."""
    if r.size == 1:
        return r / (1.0 + eps)
    return (r - r.mean()) / (r.std(ddof=1) + eps)


def grpo_advantages(rewards: Sequence[float] | np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Plain GRPO group-relative advantage Â_i = (r_i − mean) / std for one group (eq. 10)."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if r.size == 0:
        return r
    return _group_norm(r, eps)


def srpo_advantages(
    rewards: Sequence[float] | np.ndarray,
    exact: Sequence[bool] | np.ndarray,
    k: int = DEFAULT_K,
    eps: float = 1e-6,
) -> np.ndarray:
    """A_final for one group of G rollouts (eqs. 15–21).

    A_rs = (r − mean) / (std + eps) (eq. 17); c = Σ v_i; ρ = 1 − C(G−c,k)/C(G,k) (15); σ = √(ρ(1−ρ)) (16);
    positives (v_i = 1) add (1−ρ)/σ (18); negatives add ((1−ρ) − δ)/σ with δ = C(G−c−1,k−1)/C(G−1,k−1) (19–20);
    A_final = A_rs + bonus (21). The bonus is 0 when σ = 0 (c = 0, or k > G − c). k is clipped to [1, G].
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    v = np.asarray(exact, dtype=bool).reshape(-1)
    if r.shape != v.shape:
        raise ValueError(f"rewards and exact differ in shape: {r.shape} vs {v.shape}")
    g = r.size
    if g == 0:
        return r
    a_rs = _group_norm(r, eps)
    k = min(max(int(k), 1), g)
    c = int(v.sum())
    rho = 1.0 - _comb(g - c, k) / _comb(g, k)
    sigma = math.sqrt(rho * (1.0 - rho))
    if sigma == 0.0:
        return a_rs
    delta = _comb(g - c - 1, k - 1) / _comb(g - 1, k - 1)
    bonus = np.where(v, (1.0 - rho) / sigma, ((1.0 - rho) - delta) / sigma)
    return a_rs + bonus


def _factorize(group_index: Sequence | np.ndarray) -> tuple[np.ndarray, int]:
    """Group labels → contiguous ids 0..n−1 (order of first sort), and n."""
    idx = group_index if isinstance(group_index, np.ndarray) else np.asarray(group_index, dtype=object)
    idx = idx.reshape(-1)
    try:
        _, inv = np.unique(idx, return_inverse=True)
    except TypeError:  # unorderable mixed labels: fall back to first-appearance ids
        ids: dict = {}
        inv = np.fromiter((ids.setdefault(x, len(ids)) for x in idx.tolist()), dtype=np.int64, count=idx.size)
    inv = inv.reshape(-1).astype(np.int64)
    return inv, (int(inv.max()) + 1 if inv.size else 0)


def _group_stats(r: np.ndarray, inv: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group size, mean and unbiased std; singleton groups get mean 0, std 1 (verl's convention)."""
    size = np.bincount(inv, minlength=n).astype(np.float64)
    mean = np.bincount(inv, weights=r, minlength=n) / size
    sq = np.bincount(inv, weights=(r - mean[inv]) ** 2, minlength=n)
    single = size == 1
    std = np.sqrt(sq / np.where(single, 1.0, size - 1.0))
    return size, np.where(single, 0.0, mean), np.where(single, 1.0, std)


def _comb_ratio(top: np.ndarray, bottom: np.ndarray, m: np.ndarray) -> np.ndarray:
    """C(top, m) / C(bottom, m) per group as ∏_{j<m} (top−j)/(bottom−j), for 0 ≤ m ≤ bottom; 0 if top < m."""
    width = int(m.max()) if m.size else 0
    if width == 0:
        return np.ones(m.shape, dtype=np.float64)
    j = np.arange(width, dtype=np.float64)[None, :]
    active = j < m[:, None]
    num = np.maximum(top[:, None] - j, 0.0)
    den = np.where(active, bottom[:, None] - j, 1.0)
    return np.prod(np.where(active, num / den, 1.0), axis=1)


def srpo_advantages_batched(
    rewards: Sequence[float] | np.ndarray,
    exact: Sequence[bool] | np.ndarray,
    group_index: Sequence | np.ndarray,
    k: int = DEFAULT_K,
    eps: float = 1e-6,
) -> np.ndarray:
    """:func:`srpo_advantages` (eqs. 15–21) for many groups at once; ``group_index`` labels each rollout's prompt.

    Vectorised over groups (bincount statistics, product-form binomial ratios); k is clipped per group to [1, G].
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    v = np.asarray(exact, dtype=bool).reshape(-1)
    inv, n = _factorize(group_index)
    if not (r.shape == v.shape == inv.shape):
        raise ValueError(f"shape mismatch: rewards {r.shape}, exact {v.shape}, group_index {inv.shape}")
    if r.size == 0:
        return r
    size, mean, std = _group_stats(r, inv, n)
    a_rs = (r - mean[inv]) / (std[inv] + eps)
    c = np.bincount(inv, weights=v.astype(np.float64), minlength=n)
    kk = np.clip(int(k), 1, size)
    rho = 1.0 - _comb_ratio(size - c, size, kk)
    sigma = np.sqrt(rho * (1.0 - rho))
    delta = _comb_ratio(size - c - 1.0, size - 1.0, kk - 1.0)
    safe = np.where(sigma > 0, sigma, 1.0)
    pos = np.where(sigma > 0, (1.0 - rho) / safe, 0.0)
    neg = np.where(sigma > 0, ((1.0 - rho) - delta) / safe, 0.0)
    return a_rs + np.where(v, pos[inv], neg[inv])


def grpo_advantages_batched(
    rewards: Sequence[float] | np.ndarray, group_index: Sequence | np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """:func:`grpo_advantages` (eq. 10) for many groups at once."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    inv, n = _factorize(group_index)
    if r.shape != inv.shape:
        raise ValueError(f"shape mismatch: rewards {r.shape}, group_index {inv.shape}")
    if r.size == 0:
        return r
    _, mean, std = _group_stats(r, inv, n)
    return (r - mean[inv]) / (std[inv] + eps)


# ----------------------------------------------------------------------------------------------- dynamic sampling


def keep_group(rewards: Sequence[float] | np.ndarray) -> bool:
    """Variance-guided dynamic sampling (constraint of eq. 22): keep a group iff std({r_i}) ≠ 0.

    Tested exactly as max(r) > min(r), so a one-rollout group (std = 0) is dropped. Note: verl's built-in
    ``algorithm.filter_groups`` never drops single-rollout groups and tests ``np.std(values) == 0.0``.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    return bool(r.size > 1 and r.max() > r.min())


def keep_mask(rewards: Sequence[float] | np.ndarray, group_index: Sequence | np.ndarray) -> np.ndarray:
    """Per-rollout boolean mask: True where the rollout's group passes :func:`keep_group` (eq. 22)."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    inv, n = _factorize(group_index)
    if r.shape != inv.shape:
        raise ValueError(f"shape mismatch: rewards {r.shape}, group_index {inv.shape}")
    hi = np.full(n, -np.inf)
    lo = np.full(n, np.inf)
    np.maximum.at(hi, inv, r)
    np.minimum.at(lo, inv, r)
    return (hi > lo)[inv]
