"""Curriculum schedule of the hybrid SFT (paper §4.3): p_insert values, completeness, insertion rate, edge cases."""

from __future__ import annotations

from collections import Counter

import pytest

from gream_pipeline.sft.curriculum import insert_probability, reason_fraction, schedule


def test_insert_probability_hand_checked():
    # p = min(1, γ · i/N_align · N_reason/N_align), i 1-based
    assert insert_probability(1, 10, 4) == pytest.approx(1.5 * 0.1 * 0.4)  # 0.06
    assert insert_probability(5, 10, 4) == pytest.approx(0.3)
    assert insert_probability(10, 10, 4) == pytest.approx(0.6)
    assert insert_probability(10, 10, 4, gamma=1.0) == pytest.approx(0.4)
    assert insert_probability(7, 10, 10) == 1.0  # 1.5·0.7·1 = 1.05 → capped
    assert insert_probability(3, 10, 0) == 0.0
    with pytest.raises(ValueError):
        insert_probability(0, 10, 4)  # 1-based
    with pytest.raises(ValueError):
        insert_probability(11, 10, 4)
    with pytest.raises(ValueError):
        insert_probability(1, 0, 4)


def _check_complete(plan, n_align, n_reason):
    for epoch in plan:
        expected = [("align", j) for j in range(n_align)] + [("reason", j) for j in range(n_reason)]
        assert Counter(epoch) == Counter(expected)


@pytest.mark.parametrize("n_align,n_reason,epochs", [(10, 4, 3), (7, 7, 3), (3, 11, 2), (1, 1, 4), (25, 3, 3)])
def test_every_batch_once_per_epoch(n_align, n_reason, epochs):
    plan = schedule(n_align, n_reason, epochs=epochs, seed=3)
    assert len(plan) == epochs
    _check_complete(plan, n_align, n_reason)


def test_deterministic_and_seeded():
    assert schedule(12, 5, seed=1) == schedule(12, 5, seed=1)
    assert schedule(12, 5, seed=1) != schedule(12, 5, seed=2)
    plan = schedule(12, 5, seed=1)
    assert plan[0] != plan[1]  # batches are reshuffled within type every epoch


def test_curriculum_epoch_structure():
    """Curriculum epochs start with an alignment batch, never put two reasoning batches back to back before the
    tail, and keep reasoning batches in one order; the last epoch is a permutation (uniform mixing)."""
    for seed in range(50):
        plan = schedule(10, 4, epochs=3, seed=seed)
        for epoch in plan[:2]:
            assert epoch[0][0] == "align"
            last_align = max(k for k, (kind, _) in enumerate(epoch) if kind == "align")
            for k in range(1, last_align + 1):
                assert not (epoch[k][0] == "reason" and epoch[k - 1][0] == "reason")
            assert all(kind == "reason" for kind, _ in epoch[last_align + 1:])


def test_empirical_insertion_rate_matches_p_insert():
    """Across seeds, P(reasoning batch right after the i-th alignment batch | reasoning batches remain) = p(i)."""
    n_align, n_reason, seeds = 20, 8, 1500
    hits, trials = Counter(), Counter()
    for seed in range(seeds):
        for epoch in schedule(n_align, n_reason, epochs=3, seed=seed)[:2]:
            i = used = 0
            for k, (kind, _) in enumerate(epoch):
                if kind != "align":
                    continue
                i += 1
                if i == n_align or used == n_reason:  # after the last one, insertion and tail look alike
                    break
                trials[i] += 1
                if epoch[k + 1][0] == "reason":
                    hits[i] += 1
                    used += 1
    for i in range(1, n_align):
        p = insert_probability(i, n_align, n_reason)
        se = (p * (1 - p) / trials[i]) ** 0.5
        assert abs(hits[i] / trials[i] - p) < 4 * se + 0.01, (i, hits[i] / trials[i], p)
    # expected number interleaved ≈ Σ p(i) (no exhaustion at these sizes: Σ p = 6.3 < 8)
    mean_inserted = sum(hits.values()) / (2 * seeds)
    assert mean_inserted == pytest.approx(sum(insert_probability(i, n_align, n_reason) for i in range(1, n_align)),
                                          abs=0.15)


def test_last_epoch_is_uniform_mixing():
    """In the uniform epoch the position of reasoning batches is uniform (mean relative position ≈ 0.5), unlike
    the curriculum epochs where they come late."""
    n_align, n_reason, seeds = 10, 4, 600
    rel = {0: [], 2: []}
    for seed in range(seeds):
        plan = schedule(n_align, n_reason, epochs=3, seed=seed)
        for e in rel:
            rel[e] += [k / (n_align + n_reason - 1) for k, (kind, _) in enumerate(plan[e]) if kind == "reason"]
    mean = {e: sum(v) / len(v) for e, v in rel.items()}
    assert mean[2] == pytest.approx(0.5, abs=0.03)
    assert mean[0] > 0.6


def test_edge_cases():
    for epoch in schedule(5, 0, epochs=3, seed=0):
        assert sorted(epoch) == [("align", j) for j in range(5)]
    for epoch in schedule(0, 3, epochs=2, seed=0):
        assert sorted(epoch) == [("reason", j) for j in range(3)]
    assert schedule(0, 0, epochs=2) == [[], []]
    # n_reason > n_align: p(i) = min(1, 1.5·i/3·11/3) = 1 for every i → A R A R A R, then the 8 leftovers
    plan = schedule(3, 11, epochs=2, seed=0)
    _check_complete(plan, 3, 11)
    assert [kind[0] for kind, _ in plan[0]] == list("ararar") + ["r"] * 8
    # epochs=1: the only epoch is the last one → uniform mixing (not the curriculum)
    single = schedule(10, 10, epochs=1, seed=0)
    assert len(single) == 1
    _check_complete(single, 10, 10)
    with pytest.raises(ValueError):
        schedule(3, 3, epochs=0)
    with pytest.raises(ValueError):
        schedule(-1, 3)


def test_reason_fraction():
    kinds = ["align", "reason", "reason", "align", "align"]
    assert reason_fraction(kinds, 2) == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert reason_fraction(kinds, 10) == pytest.approx([0, 1 / 2, 2 / 3, 2 / 4, 2 / 5])
