"""RQ-KMeans (eq. 4–8), ID assignment with the conflict slot, and collision statistics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gream_pipeline.index.ids import assign_ids, collision_stats, id_tokens, vocabulary
from gream_pipeline.index.rqkmeans import rq_kmeans


def _planted(n_clusters=8, per=40, dim=16, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, dim)) * 5
    labels = np.repeat(np.arange(n_clusters), per)
    return (centers[labels] + rng.normal(scale=spread, size=(len(labels), dim))).astype(np.float32), labels


def test_first_level_recovers_planted_clusters():
    x, labels = _planted()
    rq = rq_kmeans(x, [8, 4, 4], niter=30, seed=1, progress=False)
    first = rq.codes[:, 0]
    # a bijection between planted labels and level-1 codes: every cluster maps to exactly one code and vice versa
    pairs = set(zip(labels.tolist(), first.tolist()))
    assert len(pairs) == 8 and len({c for _, c in pairs}) == 8


def test_residuals_follow_eq_7_and_codes_are_in_range():
    x, _ = _planted(seed=3)
    sizes = [8, 5, 3]
    rq = rq_kmeans(x, sizes, niter=20, seed=0, progress=False)
    assert rq.codes.shape == (len(x), 3)
    for level, size in enumerate(sizes):
        assert rq.codes[:, level].min() >= 0 and rq.codes[:, level].max() < size
    # reconstruct: x − Σ_l c^(l)_{s^(l)} is the final residual, whose norm is what rq reports
    recon = sum(rq.codebooks[l][rq.codes[:, l]] for l in range(3))
    final = np.linalg.norm(x - recon, axis=1).mean()
    assert final == pytest.approx(rq.residual_norms[-1], rel=1e-4)
    assert rq.residual_norms == sorted(rq.residual_norms, reverse=True)
    # eq. 6: each level's code is the nearest centroid to that level's residual
    residual = x.copy()
    for l in range(3):
        d = ((residual[:, None, :] - rq.codebooks[l][None]) ** 2).sum(-1)
        assert (d.argmin(1) == rq.codes[:, l]).mean() > 0.99
        residual = residual - rq.codebooks[l][rq.codes[:, l]]


def test_conflict_slot_and_collision_stats_hand_case():
    codes = np.array([[1, 2], [1, 2], [1, 3], [0, 0], [1, 2]])
    index = assign_ids([10, 11, 12, 13, 14], codes)
    assert index[12] == ["<a_1>", "<b_3>"] and index[13] == ["<a_0>", "<b_0>"]
    assert [index[i] for i in (10, 11, 14)] == [["<a_1>", "<b_2>", f"<c_{r}>"] for r in range(3)]
    stats = collision_stats(index, levels=2)
    assert stats["collision_rate_before_slot"] == pytest.approx(3 / 5)
    assert stats["max_items_per_code"] == 3 and stats["unique_codes_before_slot"] == 3
    assert stats["items_with_conflict_slot"] == 3 and stats["unique_after_slot"]
    assert id_tokens([12, 200, 7, 31]) == ["<a_12>", "<b_200>", "<c_7>", "<d_31>"]
    assert vocabulary([2, 3], 2) == ["<a_0>", "<a_1>", "<b_0>", "<b_1>", "<b_2>", "<c_0>", "<c_1>"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=60))
def test_ids_unique_and_prefix_free(rows):
    index = assign_ids(range(len(rows)), np.array(rows))
    ids = [tuple(t) for t in index.values()]
    assert len(set(ids)) == len(ids)
    for a in ids:
        for b in ids:
            assert a == b or a != b[: len(a)], (a, b)  # no ID is a proper prefix of another
