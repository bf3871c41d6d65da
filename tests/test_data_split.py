"""Leave-one-out split: sizes equal the formula, targets never leak, histories truncated correctly."""

import json

from gream_pipeline.artifacts import read_jsonl
from gream_pipeline.data.lcrec import load_lcrec
from gream_pipeline.data.split import leave_one_out, training_sequences
from tests.conftest import run_gream


def test_split_on_hand_sequences():
    split = leave_one_out({"u": [10, 11, 12, 13, 14], "v": [1, 2], "w": [5, 6, 7]}, max_history=2)
    assert [(e.user, e.history, e.target) for e in split["train"]] == [("u", [10], 11), ("u", [10, 11], 12)]
    assert [(e.user, e.history, e.target) for e in split["valid"]] == [("u", [11, 12], 13), ("w", [5], 6)]
    assert [(e.user, e.history, e.target) for e in split["test"]] == [("u", [12, 13], 14), ("v", [1], 2), ("w", [5, 6], 7)]
    assert training_sequences({"u": [10, 11, 12, 13, 14], "v": [1, 2]}) == {"u": [10, 11, 12], "v": [1]}


def test_split_sizes_follow_formula_on_scientific(scientific, tmp_path):
    ds = load_lcrec(scientific, "Scientific")
    lengths = [len(s) for s in ds.sequences.values()]
    split = leave_one_out(ds.sequences, max_history=20)
    assert len(split["train"]) == sum(max(n - 3, 0) for n in lengths) == 33541
    assert len(split["valid"]) == sum(n >= 3 for n in lengths) == 8317
    assert len(split["test"]) == len(lengths) == 8317
    assert max(len(e.history) for e in split["train"]) == 20
    for e in split["test"][:500]:
        seq = ds.sequences[e.user]
        assert e.target == seq[-1] and e.history == seq[-21:-1]
    heldout = {(e.user, e.target) for e in split["valid"] + split["test"]}
    assert not any((e.user, e.target) in heldout for e in split["train"])


def test_data_stage_writes_split_and_is_a_noop_on_rerun(scientific, tmp_path):
    first = run_gream("stage=data", "dataset=scientific", runs_dir=tmp_path)
    out = tmp_path / "demo_cpu-scientific" / "data"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["split"] == {"train": 33541, "valid": 8317, "test": 8317}
    assert stats["items"] == 4344 and stats["interactions"] == 58492
    assert len(read_jsonl(out / "valid.jsonl")) == 8317
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["split"]["train"] == 33541 and len(manifest["config_hash"]) == 64
    assert any(k.endswith("Scientific.inter.json") for k in manifest["inputs"])
    second = run_gream("stage=data", "dataset=scientific", runs_dir=tmp_path)
    assert "up to date" in second.stdout + second.stderr
    assert "up to date" not in first.stdout + first.stderr
    third = run_gream("stage=data", "dataset=scientific", "data.max_history=5", runs_dir=tmp_path)
    assert "up to date" not in third.stdout + third.stderr
    assert max(len(r["history"]) for r in read_jsonl(out / "train.jsonl")) == 5
