"""SRPO math (paper eqs. 13–22): hand-computed cases, edge cases, batched == per-group, hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reward_fns.srpo import (
    grpo_advantages,
    grpo_advantages_batched,
    id_tokens,
    keep_group,
    keep_mask,
    parse_answer,
    prefix_len,
    residual_reward,
    srpo_advantages,
    srpo_advantages_batched,
    success_prob,
)

T4 = ["<a_1>", "<b_2>", "<c_3>", "<d_4>"]
EPS = 1e-6


def props(n: int) -> settings:
    """Deterministic hypothesis settings with n examples (≥ 10,000 examples over this module)."""
    return settings(
        max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
    )


def _sample_std(x):
    x = np.asarray(x, dtype=float)
    return math.sqrt(((x - x.mean()) ** 2).sum() / (len(x) - 1))


# ------------------------------------------------------------------------------------------ parse_answer


def test_parse_answer_reasoning_and_direct_modes():
    text = "<think>history <a_9><b_9> …</think>\nLet's rewrite…\n<answer><a_1><b_2><c_3><d_4></answer>"
    assert parse_answer(text) == T4
    assert parse_answer("<answer> <a_1> <b_2>\n</answer> trailing") == ["<a_1>", "<b_2>"]
    # the LAST answer block wins
    assert parse_answer("<answer><a_5></answer> no, <answer><a_1><b_2></answer>") == ["<a_1>", "<b_2>"]
    # direct mode: only ID tokens and whitespace
    assert parse_answer("<a_1><b_2><c_3><d_4><e_0>") == T4 + ["<e_0>"]
    assert parse_answer("  <a_1>\n<b_2> ") == ["<a_1>", "<b_2>"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I recommend <a_1><b_2>",  # prose around bare tokens
        "<answer></answer>",  # no ID inside
        "<answer>the guitar</answer>",
        "<answer><a_1><b_2>",  # unclosed
        "</answer><answer><a_1>",  # close before open
        "<A_1><B_2>",  # upper-case is not an ID token
        "<a_x>",
        None,
        123,
        b"<a_1>",
    ],
)
def test_parse_answer_unparseable(text):
    assert parse_answer(text) is None


def test_id_tokens_accepts_string_list_and_array():
    assert id_tokens("<a_1><b_2><c_3><d_4>") == T4
    assert id_tokens(T4) == T4
    assert id_tokens(np.array(T4, dtype=object)) == T4
    with pytest.raises(TypeError):
        id_tokens(42)


# ------------------------------------------------------------------------------------------ reward (13–14)


def test_prefix_len_and_reward_hand_cases():
    assert prefix_len(T4, T4) == 4 and residual_reward(T4, T4) == 1.0
    # ℓ = 2 of H = 4: (2/4)^0.5 = 0.70710678…
    p = ["<a_1>", "<b_2>", "<c_9>", "<d_4>"]
    assert prefix_len(p, T4) == 2
    assert residual_reward(p, T4) == pytest.approx(math.sqrt(0.5))
    # β = 1 is linear: 2/4
    assert residual_reward(p, T4, beta=1.0) == pytest.approx(0.5)
    # first token wrong: ℓ = 0 even if later tokens match
    assert prefix_len(["<a_2>"] + T4[1:], T4) == 0 and residual_reward(["<a_2>"] + T4[1:], T4) == 0.0
    # unparseable → ℓ = 0
    assert prefix_len(None, T4) == 0 and residual_reward(None, T4) == 0.0
    # shorter prediction: ℓ = 3 → (3/4)^0.5
    assert prefix_len(T4[:3], T4) == 3
    assert residual_reward(T4[:3], T4) == pytest.approx(math.sqrt(0.75))


def test_reward_length_mismatch_rule():
    # prediction longer than target with all H positions matching is a different ID: ℓ = H − 1 (not exact)
    assert prefix_len(T4 + ["<e_0>"], T4) == 3
    assert residual_reward(T4 + ["<e_0>"], T4) == pytest.approx(math.sqrt(3 / 4))
    # 5-token target (conflict slot): H = 5, a 4-token prefix gives (4/5)^0.5 = 0.894…
    t5 = T4 + ["<e_1>"]
    assert prefix_len(T4, t5) == 4
    assert residual_reward(T4, t5) == pytest.approx(math.sqrt(0.8))
    assert residual_reward(T4 + ["<e_0>"], t5) == pytest.approx(math.sqrt(0.8))
    assert residual_reward(t5, t5) == 1.0


def test_reward_rejects_bad_input():
    with pytest.raises(ValueError):
        prefix_len(T4, [])
    with pytest.raises(ValueError):
        residual_reward(T4, T4, beta=0.0)


# ------------------------------------------------------------------------------------------ advantages (15–21)


def test_success_prob_eq15():
    # G=4, k=2: C(4,2) = 6
    assert success_prob(0, 4, 2) == 0.0
    assert success_prob(1, 4, 2) == pytest.approx(1 - 3 / 6)  # C(3,2) = 3
    assert success_prob(2, 4, 2) == pytest.approx(1 - 1 / 6)  # C(2,2) = 1
    assert success_prob(3, 4, 2) == 1.0  # C(1,2) = 0
    # G=10, k=4, c=1: 1 − C(9,4)/C(10,4) = 1 − 126/210 = 0.4
    assert success_prob(1, 10, 4) == pytest.approx(0.4)
    # k is clipped to [1, G]
    assert success_prob(1, 4, 0) == success_prob(1, 4, 1) == pytest.approx(0.25)
    assert success_prob(1, 4, 9) == success_prob(1, 4, 4) == 1.0


def test_srpo_hand_G4_k2_c1():
    r = [1.0, 0.5, 0.5, 0.0]
    v = [True, False, False, False]
    # A_rs: mean 0.5, sample std sqrt((0.25+0+0+0.25)/3) = sqrt(1/6)
    std = math.sqrt(1 / 6)
    a_rs = [(x - 0.5) / (std + EPS) for x in r]
    # ρ = 1 − C(3,2)/C(4,2) = 1 − 3/6 = 0.5 ; σ = sqrt(0.5·0.5) = 0.5
    # positive bonus (1−ρ)/σ = 0.5/0.5 = 1
    # δ = C(2,1)/C(3,1) = 2/3 ; negative bonus ((1−ρ) − δ)/σ = (0.5 − 2/3)/0.5 = −1/3
    expected = [a_rs[0] + 1.0, a_rs[1] - 1 / 3, a_rs[2] - 1 / 3, a_rs[3] - 1 / 3]
    np.testing.assert_allclose(srpo_advantages(r, v, k=2), expected, rtol=1e-12)
    np.testing.assert_allclose(srpo_advantages(r, v, k=2), [2.2247419, -1 / 3, -1 / 3, -1.5580752], atol=1e-6)


def test_srpo_hand_G4_k2_c2():
    r = [1.0, 1.0, 0.5, 0.0]
    v = [True, True, False, False]
    # ρ = 1 − C(2,2)/C(4,2) = 5/6 ; σ = sqrt(5/6·1/6) = √5/6
    # pos = (1/6)/(√5/6) = 1/√5 ; δ = C(1,1)/C(3,1) = 1/3 ; neg = (1/6 − 1/3)/(√5/6) = −1/√5
    mean, std = 0.625, _sample_std(r)
    a_rs = [(x - mean) / (std + EPS) for x in r]
    s5 = 1 / math.sqrt(5)
    expected = [a_rs[0] + s5, a_rs[1] + s5, a_rs[2] - s5, a_rs[3] - s5]
    np.testing.assert_allclose(srpo_advantages(r, v, k=2), expected, rtol=1e-12)


def test_srpo_hand_G10_k4_c1():
    r = [1.0] + [0.5] * 4 + [0.0] * 5
    v = [True] + [False] * 9
    # ρ = 0.4 ; σ = sqrt(0.24) ; pos = 0.6/σ ; δ = C(8,3)/C(9,3) = 56/84 = 2/3 ; neg = (0.6 − 2/3)/σ
    sigma = math.sqrt(0.24)
    a_rs = (np.array(r) - np.mean(r)) / (_sample_std(r) + EPS)
    expected = a_rs + np.array([0.6 / sigma] + [(0.6 - 2 / 3) / sigma] * 9)
    np.testing.assert_allclose(srpo_advantages(r, v, k=4), expected, rtol=1e-12)


def test_srpo_k1_is_binary_grpo_bonus():
    # k = 1: ρ = c/G = 1/4, σ = √3/4, δ = C(2,0)/C(3,0) = 1 → pos (1−ρ)/σ = √3, neg −ρ/σ = −1/√3
    r = [1.0, 0.5, 0.0, 0.0]
    v = [True, False, False, False]
    a_rs = (np.array(r) - 0.375) / (_sample_std(r) + EPS)
    expected = a_rs + np.array([math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3)])
    np.testing.assert_allclose(srpo_advantages(r, v, k=1), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("r", "v", "k"),
    [
        ([0.5, 0.7, 0.0, 0.0], [False] * 4, 2),  # c = 0 → ρ = 0, σ = 0
        ([1.0, 1.0, 1.0, 1.0], [True] * 4, 2),  # c = G → ρ = 1
        ([1.0, 0.5, 0.7, 0.0], [True, False, False, False], 4),  # k = G → ρ = 1 when c ≥ 1
        ([1.0, 0.5, 0.7, 0.0], [True, False, False, False], 99),  # k > G clipped to G
        ([1.0, 1.0, 0.7, 0.0], [True, True, False, False], 3),  # k > G − c → C(2,3) = 0 → ρ = 1
    ],
)
def test_srpo_bonus_vanishes_when_sigma_zero(r, v, k):
    np.testing.assert_allclose(srpo_advantages(r, v, k=k), grpo_advantages(r), rtol=0, atol=0)


def test_srpo_degenerate_groups():
    # G = 1 uses verl's convention (mean 0, std 1): A = r / (1 + eps); ρ ∈ {0, 1} → no bonus
    np.testing.assert_allclose(srpo_advantages([0.5], [False], k=3), [0.5 / (1 + EPS)])
    np.testing.assert_allclose(srpo_advantages([1.0], [True], k=1), [1.0 / (1 + EPS)])
    # all-equal rewards: A_rs = 0/(0+eps) = 0; no exact hit → all zero
    np.testing.assert_array_equal(srpo_advantages([0.5] * 5, [False] * 5, k=2), np.zeros(5))
    assert srpo_advantages([], [], k=2).size == 0
    with pytest.raises(ValueError):
        srpo_advantages([1.0, 0.0], [True], k=1)


def test_grpo_hand():
    # mean 0.25, sample std sqrt((0.5625 + 3·0.0625)/3) = 0.5
    np.testing.assert_allclose(grpo_advantages([1, 0, 0, 0]), np.array([1.5, -0.5, -0.5, -0.5]) * 0.5 / (0.5 + EPS))


def test_batched_equals_per_group():
    rng = np.random.default_rng(0)
    sizes = [1, 2, 3, 4, 5, 10, 10, 16]
    labels, rewards, exact = [], [], []
    for gi, g in enumerate(sizes):
        v = rng.random(g) < 0.3
        r = np.where(v, 1.0, np.sqrt(rng.integers(0, 4, g) / 4))
        labels += [f"uid-{gi}"] * g
        rewards.append(r)
        exact.append(v)
    r_all, v_all, lab = np.concatenate(rewards), np.concatenate(exact), np.array(labels, dtype=object)
    perm = rng.permutation(len(lab))  # interleave groups like a shuffled batch
    for k in (1, 2, 4, 10, 50):
        got = srpo_advantages_batched(r_all[perm], v_all[perm], lab[perm], k=k)
        want = np.empty_like(r_all)
        for gi in range(len(sizes)):
            m = lab == f"uid-{gi}"
            want[m] = srpo_advantages(r_all[m], v_all[m], k=k)
        np.testing.assert_allclose(got, want[perm], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        grpo_advantages_batched(r_all, lab),
        np.concatenate([grpo_advantages(r) for r in rewards]),
        rtol=1e-12,
    )
    # integer and mixed-type labels work too
    np.testing.assert_allclose(
        srpo_advantages_batched([1, 0, 0.5, 1], [1, 0, 0, 1], [7, 7, "x", "x"], k=1),
        np.concatenate([srpo_advantages([1, 0], [1, 0], k=1), srpo_advantages([0.5, 1], [0, 1], k=1)]),
    )


def test_keep_group_and_mask():
    assert keep_group([0.0, 0.5])
    assert not keep_group([0.5, 0.5, 0.5])
    assert not keep_group([1.0])  # std of one sample is 0
    assert not keep_group([])
    r = [0.1, 0.1, 0.1, 0.0, 1.0, 0.7]
    g = ["a", "a", "a", "b", "b", "c"]
    np.testing.assert_array_equal(keep_mask(r, g), [False, False, False, True, True, False])


# ------------------------------------------------------------------------------------------ properties

_tok = st.sampled_from(["<a_1>", "<a_2>", "<b_1>", "<b_2>", "<c_1>", "<d_1>", "<e_0>"])
_ids = st.lists(_tok, min_size=1, max_size=6)


@props(3000)
@given(pred=st.one_of(st.none(), st.lists(_tok, max_size=7)), target=_ids, beta=st.floats(0.01, 1.0))
def test_prop_reward_range_and_exactness(pred, target, beta):
    ell = prefix_len(pred, target)
    r = residual_reward(pred, target, beta)
    assert 0 <= ell <= len(target)
    assert math.isfinite(r) and 0.0 <= r <= 1.0
    assert (r == 1.0) == (pred == target) == (ell == len(target))
    # the verl plugin's exact test (r ≥ 1 − 1e-6) agrees for H ≤ 6 (β ≥ 0.01 keeps r < 1 − 1e-6 when inexact)
    assert (r >= 1 - 1e-6) == (pred == target)


_fragments = st.sampled_from(
    ["<answer>", "</answer>", "<think>", "</think>", "<a_1>", "<b_22>", "<c_", "_3>", " ", "\n", "x"]
)


@props(2500)
@given(text=st.text())
def test_prop_parse_answer_never_raises_on_text(text):
    out = parse_answer(text)
    assert out is None or (isinstance(out, list) and out and all(t.startswith("<") for t in out))


@props(2500)
@given(parts=st.lists(st.one_of(_fragments, st.text(max_size=5)), max_size=20))
def test_prop_parse_answer_structured_text(parts):
    text = "".join(parts)
    out = parse_answer(text)
    assert out is None or all(id_tokens(t) == [t] for t in out)
    if out is not None and "</answer>" not in text:  # direct mode: the text is exactly the tokens + whitespace
        assert "".join(text.split()) == "".join(out)


@st.composite
def _group(draw):
    g = draw(st.integers(1, 16))
    v = draw(st.lists(st.booleans(), min_size=g, max_size=g))
    lev = draw(st.lists(st.integers(0, 3), min_size=g, max_size=g))
    r = [1.0 if x else math.sqrt(lv / 4) for x, lv in zip(v, lev)]
    k = draw(st.integers(-2, 20))
    return np.array(r), np.array(v), k


@props(2000)
@given(group=_group())
def test_prop_advantages_finite_and_bonus_zero_mean(group):
    r, v, k = group
    a = srpo_advantages(r, v, k=k)
    assert a.shape == r.shape and np.all(np.isfinite(a))
    bonus = a - grpo_advantages(r)
    # Σ bonus = c(1−ρ) + (G−c)((1−ρ) − δ) = G(1−ρ) − (G−c)δ = 0, since (1−ρ) = (G−c)/G · δ
    assert abs(bonus.sum()) < 1e-8 * max(1.0, np.abs(bonus).max())
    kk = min(max(k, 1), len(r))
    rho = success_prob(int(v.sum()), len(r), kk)
    if rho in (0.0, 1.0):
        assert np.all(bonus == 0)
    else:  # exact hits get a larger bonus than misses
        assert np.all(bonus[v] > 0) and np.all(bonus[v].min() > bonus[~v].max())


@props(300)
@given(groups=st.lists(_group(), min_size=1, max_size=6), k=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_prop_batched_matches_single(groups, k, seed):
    labels = np.concatenate([[f"u{i}"] * len(g[0]) for i, g in enumerate(groups)]).astype(object)
    r = np.concatenate([g[0] for g in groups])
    v = np.concatenate([g[1] for g in groups])
    perm = np.random.default_rng(seed).permutation(len(r))
    got = srpo_advantages_batched(r[perm], v[perm], labels[perm], k=k)
    want = np.concatenate([srpo_advantages(g[0], g[1], k=k) for g in groups])[perm]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert np.all(np.isfinite(got))
