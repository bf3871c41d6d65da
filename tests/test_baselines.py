"""Baselines (bench/baselines/): most-popular on a hand-computed case, and the RecBole atomic-file
conversion + split comparison (pure python; RecBole itself lives in .venv-recbole and is not needed here)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from gream_pipeline.data.split import leave_one_out

BASELINES = Path(__file__).resolve().parents[1] / "bench" / "baselines"


def _load(name: str):
    sys.path.insert(0, str(BASELINES))  # sasrec_recbole imports most_popular by name
    spec = importlib.util.spec_from_file_location(f"baseline_{name}", BASELINES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mp = _load("most_popular")
sr = _load("sasrec_recbole")

# Item 9 appears only in items.json (never interacted): it must still be ranked (last).
INTER = {"a": [1, 2, 3, 1, 4], "b": [2, 3, 2, 5, 1], "c": [3, 2, 1, 6, 3]}


def _write_data_dir(root: Path, inter: dict, max_history: int = 20) -> Path:
    d = root / "data"
    d.mkdir(parents=True)
    (d / "inter.json").write_text(json.dumps(inter))
    (d / "items.json").write_text(json.dumps({str(i): {} for i in range(1, 10)}))
    for split, exs in leave_one_out(inter, max_history).items():
        (d / f"{split}.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in exs))
    return d


def test_popularity_counts_training_part_only():
    # train parts: a [1,2,3], b [2,3,2], c [3,2,1] → 2:4, 3:3, 1:2 ; +valid items 1,5,6 for holdout=1
    assert mp.popularity(INTER, holdout=2) == {2: 4, 3: 3, 1: 2}
    assert mp.popularity(INTER, holdout=1) == {2: 4, 3: 3, 1: 3, 5: 1, 6: 1}
    assert mp.rank_items(mp.popularity(INTER), range(1, 10)) == [2, 3, 1, 4, 5, 6, 7, 8, 9]


def test_most_popular_metrics_hand_computed(tmp_path):
    res = mp.run(_write_data_dir(tmp_path, INTER))
    # order 2,3,1,4,5,6,… ; test targets a→4 (rank 3), b→1 (rank 2), c→3 (rank 1), 0-based
    ndcg5 = (1 / math.log2(5) + 1 / math.log2(4) + 1 / math.log2(3)) / 3
    assert res["test"]["recall@1"] == 0.0
    assert res["test"]["recall@5"] == 1.0
    assert res["test"]["ndcg@5"] == pytest.approx(ndcg5, abs=1e-6)
    # valid targets a→1 (rank 2), b→5 (rank 4), c→6 (rank 5): recall@5 = 2/3
    assert res["valid"]["recall@5"] == pytest.approx(2 / 3, abs=1e-6)
    assert res["valid"]["ndcg@5"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(6)) / 3, abs=1e-6)
    # train+valid counts 2:4, 1:3, 3:3, 5:1, 6:1 → order 2,1,3,5,6,4,…: a→4 rank 5 (out), b→1 rank 1, c→3 rank 2
    assert res["test_train_valid_counts"]["ndcg@1"] == 0.0
    assert res["test_train_valid_counts"]["recall@5"] == pytest.approx(2 / 3, abs=1e-6)
    assert res["test_train_valid_counts"]["ndcg@5"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3,
                                                                     abs=1e-6)
    assert res["n_items"] == 9 and res["n_test"] == 3 and res["n_valid"] == 3


def test_most_popular_first_n_test_users(tmp_path):
    """`first_n_test` scores the first N rows of test.jsonl (the users gream's eval.max_users covers)."""
    res = mp.run(_write_data_dir(tmp_path, INTER), first_n_test=2)
    # first two test users a→4 (rank 3), b→1 (rank 2): recall@1 0, recall@5 1, ndcg@5 mean of 1/log2(5), 1/log2(4)
    assert res["test_first_n"]["n"] == 2 and res["test_first_n"]["recall@5"] == 1.0
    assert res["test_first_n"]["ndcg@5"] == pytest.approx((1 / math.log2(5) + 1 / math.log2(4)) / 2, abs=1e-6)
    assert "test_first_n" not in mp.run(_write_data_dir(tmp_path / "x", INTER))


def test_most_popular_exclude_history(tmp_path):
    res = mp.run(_write_data_dir(tmp_path, INTER), exclude_history=True)
    # test a: history [1,2,3,1] masked → 4 first; b: history {2,3,5} → 1 first; c: {3,2,1,6}… target 3 is masked
    assert res["test"]["recall@1"] == pytest.approx(2 / 3, abs=1e-6)
    assert res["test"]["recall@10"] == pytest.approx(2 / 3, abs=1e-6)


def test_check_split_rejects_a_mismatch():
    with pytest.raises(ValueError, match="test target"):
        mp.check_split(INTER, [], [{"user": "a", "history": [], "target": 1}])


def test_atomic_inter_lines_positions_as_timestamps():
    lines = sr.atomic_inter_lines({"u1": [5, 3, 5], "u2": [7, 8]})
    assert lines == ["user_id:token\titem_id:token\ttimestamp:float",
                     "u1\t5\t0", "u1\t3\t1", "u1\t5\t2", "u2\t7\t0", "u2\t8\t1"]


def test_write_atomic_dataset_layout(tmp_path):
    path = sr.write_atomic_dataset({"0": [1, 2, 3]}, tmp_path, "sci")
    assert path == tmp_path / "sci" / "sci.inter"
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert rows[0] == ["user_id:token", "item_id:token", "timestamp:float"]
    assert [r[2] for r in rows[1:]] == ["0", "1", "2"] and all(len(r) == 3 for r in rows)


def _recbole_like_examples(inter: dict, max_len: int) -> dict[str, list]:
    """What RecBole's sequential augmentation + LS valid_and_test split yields (re-derived independently)."""
    out = {"train": [], "valid": [], "test": []}
    for u, seq in inter.items():
        rows = [(u, tuple(str(x) for x in seq[max(0, t - max_len):t]), str(seq[t])) for t in range(1, len(seq))]
        out["train"] += rows[:-2]
        out["valid"] += rows[-2:-1]
        out["test"] += rows[-1:]
    return out


def test_our_split_equals_recbole_leave_one_out(tmp_path):
    inter = dict(INTER, d=list(range(10, 40)))  # 30 items: exercises history truncation at 20
    ours = sr.our_examples(_write_data_dir(tmp_path, inter))
    theirs = _recbole_like_examples(inter, 20)
    for split in ("train", "valid", "test"):
        rep = sr.compare_examples(ours[split], theirs[split])
        assert rep["only_ours"] == rep["only_recbole"] == 0 and rep["matched"] == len(ours[split]) > 0
    assert sr.compare_targets(ours["test"], theirs["test"])["same_target"] == 4


def test_compare_detects_differences():
    ours = [("u", ("1",), "2"), ("v", ("3",), "4")]
    theirs = [("u", ("1",), "2"), ("v", ("3",), "5")]
    assert sr.compare_examples(ours, theirs) == {"ours": 2, "recbole": 2, "matched": 1,
                                                 "only_ours": 1, "only_recbole": 1}
    assert sr.compare_targets(ours, theirs)["missing_or_different"] == 1
