"""Evaluation metrics on hand-computed rankings."""

import math

import pytest

from gream_pipeline.eval import metrics as M
from gream_pipeline.eval.answers import local_parse_answer
from gream_pipeline.eval.report import paper_rows, write_report
from tests.fixtures.configs import eval_config
from gream_pipeline.eval.runner import compute_metrics
from gream_pipeline.eval.trie import IDCatalog


def test_recall_ndcg_single_user():
    ranked = ["x", "y", "t", "z"]
    assert M.recall_at_k(ranked, "t", 1) == 0.0
    assert M.recall_at_k(ranked, "t", 2) == 0.0
    assert M.recall_at_k(ranked, "t", 3) == 1.0
    assert M.ndcg_at_k(ranked, "t", 3) == pytest.approx(0.5)  # rank 2 (0-based) → 1/log2(4)
    assert M.ndcg_at_k(ranked, "t", 2) == 0.0
    assert M.ndcg_at_k(["t"], "t", 1) == 1.0
    assert M.ndcg_at_k([], "t", 10) == 0.0


def test_ranking_metrics_average():
    rankings = [["a", "b", "c"], ["x", "t2", "y"], ["p", "q", "r"], ["t4"]]
    targets = ["a", "t2", "zz", "t4"]
    m = M.ranking_metrics(rankings, targets, ks=(1, 2, 3))
    assert m["recall@1"] == pytest.approx(2 / 4)
    assert m["recall@2"] == pytest.approx(3 / 4)
    assert m["recall@3"] == pytest.approx(3 / 4)
    assert m["ndcg@1"] == pytest.approx(2 / 4)
    assert m["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3) + 0 + 1) / 4)
    assert list(m) == ["recall@1", "recall@2", "recall@3", "ndcg@1", "ndcg@2", "ndcg@3"]


def test_pass_at_k_unbiased_estimator():
    assert M.pass_at_k(10, 0, 1) == 0.0
    assert M.pass_at_k(10, 1, 1) == pytest.approx(0.1)
    assert M.pass_at_k(10, 2, 5) == pytest.approx(1 - 56 / 252)  # 1 − C(8,5)/C(10,5)
    assert M.pass_at_k(10, 3, 10) == 1.0
    assert M.pass_at_k(10, 6, 5) == 1.0  # n − c < k
    assert M.pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 − C(3,2)/C(4,2) = 1 − 3/6
    with pytest.raises(ValueError):
        M.pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        M.pass_at_k(4, 5, 1)
    agg = M.mean_pass_at_k([(10, 1), (10, 0)], ks=(1, 5, 10, 20))
    assert agg["pass@1"] == pytest.approx(0.05)
    assert agg["pass@5"] == pytest.approx(0.25)  # (1 − C(9,5)/C(10,5)) / 2 = 0.5 / 2
    assert agg["pass@10"] == pytest.approx(0.5)
    assert agg["pass@20"] is None


def test_item_level_rule_shared_ids():
    # items 3 and 7 share one ID (an index without the conflict slot); item 3 is the lower id.
    index = {"3": ["<a_1>", "<b_1>"], "7": ["<a_1>", "<b_1>"], "5": ["<a_2>", "<b_0>"]}
    cat = IDCatalog.from_index(index)
    owner = M.resolve_id_owner(cat.id_to_items())
    assert owner == {"<a_1><b_1>": "3", "<a_2><b_0>": "5"}
    ranked = ["<a_2><b_0>", "<a_1><b_1>"]
    records = [{"target": "3", "target_id": "<a_1><b_1>", "direct": [{"id": s, "score": 0.0} for s in ranked]},
               {"target": "7", "target_id": "<a_1><b_1>", "direct": [{"id": s, "score": 0.0} for s in ranked]}]
    m = compute_metrics(records, cat, ks=(1, 2))
    assert m["direct"]["recall@2"] == 1.0  # ID-level: both users hit
    assert m["direct"]["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert m["direct_item"]["recall@2"] == 0.5  # item-level: only item 3 is named by the shared ID
    assert m["direct_item"]["ndcg@2"] == pytest.approx(0.5 / math.log2(3))


def test_compute_metrics_reason_rates():
    cat = IDCatalog.from_index({"0": ["<a_0>", "<b_0>"], "1": ["<a_0>", "<b_1>"]})
    records = [
        {"target": "0", "target_id": "<a_0><b_0>",
         "reason": {"n": 4, "correct": 1, "well_formed": 3, "valid": 2, "natural_close": 1, "generated_tokens": 40,
                    "ranked": ["<a_0><b_1>", "<a_0><b_0>"]}},
        {"target": "1", "target_id": "<a_0><b_1>",
         "reason": {"n": 4, "correct": 0, "well_formed": 4, "valid": 4, "natural_close": 4, "generated_tokens": 80,
                    "ranked": ["<a_0><b_0>"]}},
    ]
    m = compute_metrics(records, cat, ks=(1, 2, 4))
    assert m["reason"]["natural_close_rate"] == pytest.approx(5 / 8)
    assert m["reason"]["generated_tokens_per_user"] == pytest.approx(60)
    assert m["reason_rank"]["recall@1"] == 0.0 and m["reason_rank"]["recall@2"] == pytest.approx(0.5)
    assert m["reason_rank"]["ndcg@2"] == pytest.approx(0.5 / math.log2(3))
    assert m["reason"]["pass@1"] == pytest.approx(0.25 / 2)
    assert m["reason"]["pass@2"] == pytest.approx(0.5 / 2)  # 1 − C(3,2)/C(4,2) = 0.5
    assert m["reason"]["pass@4"] == pytest.approx(0.5)
    assert m["reason"]["well_formed_rate"] == pytest.approx(7 / 8)
    assert m["reason"]["valid_answer_rate"] == pytest.approx(6 / 8)
    assert "direct" not in m


def test_catalog_rejects_prefix_collisions():
    with pytest.raises(ValueError):
        IDCatalog.from_index({"0": ["<a_0>", "<b_0>"], "1": ["<a_0>", "<b_0>", "<c_0>"]})


def test_local_answer_parser():
    assert local_parse_answer("<think>x</think> so <answer><a_1><b_22><c_3><d_4></answer>") == \
        ["<a_1>", "<b_22>", "<c_3>", "<d_4>"]
    assert local_parse_answer("<answer> <|a_1|> <|b_2|><c_3><d_4><e_0> </answer>") == \
        ["<a_1>", "<b_2>", "<c_3>", "<d_4>", "<e_0>"]
    assert local_parse_answer("<answer>a</answer> then <answer><a_5><b_6></answer>") == ["<a_5>", "<b_6>"]
    assert local_parse_answer("<answer><b_1><a_2></answer>") is None  # levels out of order
    assert local_parse_answer("<answer>item <a_1></answer>") is None
    assert local_parse_answer("no tags <a_1><b_2>") is None


def test_paper_rows_and_report_table():
    rows = paper_rows("Instruments")
    assert rows["GREAM-Align"]["recall@10"] == 0.1207 and rows["GREAM-RL"]["recall@10"] == 0.1139
    assert rows["GREAM-Align"]["ndcg@10"] == 0.0931 and rows["GREAM-RL"]["ndcg@10"] == 0.0884
    assert rows["GREAM-Align"]["pass@1"] == 0.0495 and rows["GREAM-RL"]["pass@1"] == 0.0650
    assert paper_rows("beauty")["GREAM-Align"]["recall@10"] == 0.0814
    assert paper_rows("Beauty")["GREAM-RL"]["recall@10"] == 0.0771
    assert paper_rows("Sports")["GREAM-Align"]["recall@10"] == 0.0556
    assert paper_rows("sports")["GREAM-RL"]["recall@10"] == 0.0523
    assert paper_rows("Scientific") is None
    metrics = {"direct": {"recall@10": 0.2, "ndcg@10": 0.1}, "reason": {"pass@1": 0.03},
               "meta": {"n_users": 3}}
    md = write_report(metrics, eval_config(dataset="Instruments"))
    assert "| paper: GREAM-Align | 0.0711 | 0.1026 | 0.1207 | – | 0.0872 | 0.0931 |" in md
    assert "| this run | 0.0300 |" in md
    assert "No published numbers" in write_report(metrics, eval_config(dataset="Scientific"))


def test_wilson_interval_hand_computed():
    from gream_pipeline.eval.metrics import wilson_interval

    lo, hi = wilson_interval(10, 100)  # p=0.1, n=100, z=1.96: centre 0.11725, half 0.06234 (by hand)
    assert lo == pytest.approx(0.05523, abs=1e-4) and hi == pytest.approx(0.17437, abs=1e-4)
    assert wilson_interval(0, 50)[0] == 0.0 and 0 < wilson_interval(0, 50)[1] < 0.08
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_paired_bootstrap_brackets_the_paired_difference():
    from gream_pipeline.eval.metrics import paired_bootstrap

    a, b = [1.0] * 30 + [0.0] * 70, [1.0] * 10 + [0.0] * 90  # b's hits are a subset of a's: diff 0.2
    res = paired_bootstrap(a, b, iters=500, seed=1)
    assert res["diff"] == pytest.approx(0.2) and res["lo"] < 0.2 < res["hi"] and res["lo"] > 0.1
    same = paired_bootstrap(a, a, iters=200)
    assert same == {"diff": 0.0, "lo": 0.0, "hi": 0.0, "n": 100}
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [])


def test_most_popular_counts_only_what_precedes_the_target():
    from gream_pipeline.eval.baselines import most_popular, popularity_order

    seqs = {"u1": [1, 2, 3], "u2": [2, 3, 4], "u3": [2, 1, 4]}
    # test split counts s[:-1]: 1:2, 2:3, 3:1, 4:0; ties by item id
    assert popularity_order(seqs, 1) == ["2", "1", "3", "4"]
    # validation split counts s[:-2]: 1:1, 2:2, 3:0, 4:0
    assert popularity_order(seqs, 2) == ["2", "1", "3", "4"]
    examples = [{"user": "u1", "target": 3}, {"user": "u2", "target": 4}, {"user": "u3", "target": 4}]
    metrics, top = most_popular(seqs, examples, "test", [1, 5])
    assert top == ["2", "1", "3", "4"] and metrics["recall@1"] == 0.0 and metrics["recall@5"] == 1.0
    assert metrics["ndcg@5"] == pytest.approx((1 / math.log2(4) + 2 / math.log2(5)) / 3)
