"""Offline synthesizer through ``run_synth`` (no endpoint): outputs, determinism, resume, real Scientific metadata."""

import json
import os
import stat
import time
from pathlib import Path

import pytest

from data_synth import SynthConfig, run_synth
from data_synth.config import recipe_defaults
from data_synth.store import read_records
from data_synth.validate import validate_reasoning
from tests.fixtures.configs import section, synth_config
from tests.fixtures.servers import toy_dataset

SCIENTIFIC = Path("/work/shared/datasets/Scientific")
CFG = dict(progress=False)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_valid_template_sample_per_training_user(tmp_path):
    items, train, index = toy_dataset(n_users=25, n_items=50)
    items["49"] = {"title": "", "description": "", "brand": "", "categories": ""}  # no text: not enriched
    summary = run_synth(items, train, index, tmp_path, synth_config(**CFG))
    last = {ex["user"]: ex for ex in train}
    out = rows(tmp_path / "reasoning.jsonl")
    assert [r["user"] for r in out] == list(last)  # every training user once, in order
    known = {"".join(t) for t in index.values()}
    for r in out:
        assert (r["history"], r["target"]) == (last[r["user"]]["history"], last[r["user"]]["target"])
        assert r["source"] == "template"
        ids = ["".join(index[str(i)]) for i in r["history"]]
        parsed = validate_reasoning(r["text"], ids, "".join(index[str(r["target"])]), known)
        assert r["preference"] == parsed.preference
        assert r["rewritten_history"] == [r["history"][ids.index(i)] for i in parsed.rewritten]
    enriched = json.loads((tmp_path / "enriched_items.json").read_text())
    assert sorted(enriched, key=int) == [str(i) for i in range(49)]
    reason, enrich = summary["jobs"]["reason"], summary["jobs"]["enrich"]
    assert (reason["tasks"], reason["ok"], reason["rejected"], reason["missing"]) == (25, 25, 0, 0)
    assert (enrich["ok"], enrich["skipped"]) == (49, {"no_text": 1})
    assert summary["mode"] == "offline" and summary["requests"] == 0
    records, info = read_records(tmp_path / "store.jsonl")
    assert info == {"lines": 74, "corrupt": 0, "duplicates": 0}
    assert {r["source"] for r in records.values()} == {"template"} and (tmp_path / "rejected.jsonl").read_text() == ""


def test_deterministic_and_resumable(tmp_path):
    items, train, index = toy_dataset(n_users=20, n_items=40, seed=3)
    run_synth(items, train, index, tmp_path / "a", synth_config(**CFG))
    run_synth(items, train, index, tmp_path / "b", synth_config(**CFG))
    for name in ("store.jsonl", "reasoning.jsonl", "enriched_items.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    before = (tmp_path / "a" / "store.jsonl").read_bytes()
    again = run_synth(items, train, index, tmp_path / "a", synth_config(**CFG))
    assert again["jobs"]["reason"]["cached"] == 20 and again["jobs"]["reason"]["new"] == {}
    assert (tmp_path / "a" / "store.jsonl").read_bytes() == before
    # a changed index changes the keys of affected users only: just those are generated again
    index["0"] = ["<a_6>", "<b_10>", "<c_12>", "<d_999>"]
    third = run_synth(items, train, index, tmp_path / "a", synth_config(jobs=["reason"], **CFG))
    touched = sum(1 for ex in {e["user"]: e for e in train}.values() if 0 in ex["history"] or ex["target"] == 0)
    assert third["jobs"]["reason"]["new"] == {"ok": touched} and third["jobs"]["reason"]["cached"] == 20 - touched


def test_config_rules_and_unindexed_users(tmp_path):
    with pytest.raises(ValueError):
        synth_config(offline=False)
    with pytest.raises(ValueError):
        synth_config(base_url="http://127.0.0.1:1/v1")  # online needs a model
    with pytest.raises(ValueError, match="unknown"):
        SynthConfig.from_mapping({**section("synth"), "concurency": 3})
    with pytest.raises(ValueError, match="missing SynthConfig keys \\['concurrency'\\]"):
        SynthConfig.from_mapping({k: v for k, v in section("synth").items() if k != "concurrency"})
    assert recipe_defaults() == section("synth")  # what callers outside the pipeline start from
    assert synth_config(base_url="http://x/v1", model="m", offline=True).source == "template"
    assert "api_key" not in json.dumps(synth_config().public()).replace("api_key_env", "")
    items, train, index = toy_dataset(n_users=10, n_items=30)
    last = list({e["user"]: e for e in train}.values())[:5]
    del index[str(last[0]["target"])]
    hit = sum(1 for e in last if last[0]["target"] in (*e["history"], e["target"]))
    summary = run_synth(items, train, index, tmp_path, synth_config(jobs=["reason"], max_users=5, **CFG))
    assert summary["jobs"]["reason"]["skipped"] == {"missing_id": hit} and summary["jobs"]["reason"]["ok"] == 5 - hit
    assert not (tmp_path / "enriched_items.json").exists()


@pytest.mark.skipif(not SCIENTIFIC.exists(), reason="Scientific dataset not available")
def test_scientific_metadata_subset_passes_validation_quickly(tmp_path):
    items = json.loads((SCIENTIFIC / "Scientific.item.json").read_text())
    inter = json.loads((SCIENTIFIC / "Scientific.inter.json").read_text())
    users = list(inter)[:1500]
    train = [{"user": u, "history": inter[u][max(0, t - 20):t], "target": inter[u][t]}
             for u in users for t in range(1, len(inter[u]) - 2)]
    index = {i: [f"<a_{int(i) % 7}>", f"<b_{int(i) % 11}>", f"<c_{int(i) // 256}>", f"<d_{int(i) % 256}>"]
             for i in items}  # any unique 4-token ID works for this check
    start = time.perf_counter()
    summary = run_synth(items, train, index, tmp_path, synth_config(jobs=["reason"], **CFG))
    assert summary["jobs"]["reason"]["ok"] == 1500 and summary["jobs"]["reason"]["rejected"] == 0
    assert time.perf_counter() - start < 20


def test_enrich_before_index_exists_with_external_store(tmp_path):
    """The enrich job needs no index (it can run before the index stage); the store may live outside out_dir."""
    from data_synth import format_summary

    items, train, _ = toy_dataset(n_users=5, n_items=15)
    cfg = synth_config(jobs=["enrich"], store_path=str(tmp_path / "cache" / "synth.jsonl"), **CFG)
    summary = run_synth(items, train, {}, tmp_path / "stage", cfg)
    assert summary["jobs"]["enrich"]["ok"] == 15 and (tmp_path / "cache" / "synth.jsonl").exists()
    assert not (tmp_path / "stage" / "store.jsonl").exists()
    again = run_synth(items, train, {}, tmp_path / "stage2", cfg)
    assert again["jobs"]["enrich"]["cached"] == 15
    assert (tmp_path / "stage" / "enriched_items.json").read_text() == \
        (tmp_path / "stage2" / "enriched_items.json").read_text()
    assert "enrich: 15 ok" in format_summary(again)


def test_outputs_follow_the_umask_and_the_umask_is_left_alone(tmp_path):
    items, train, index = toy_dataset(n_users=3, n_items=10)
    previous = os.umask(0o027)
    try:
        run_synth(items, train, index, tmp_path, synth_config(**CFG))
        assert os.umask(0o027) == 0o027  # run_synth did not change the process umask
    finally:
        os.umask(previous)
    for name in ("reasoning.jsonl", "enriched_items.json", "rejected.jsonl", "store.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name  # 0o644 under umask 027
    assert not list(tmp_path.glob(".*.tmp"))


def test_compact_style_is_the_same_format_shorter_with_its_own_store_keys(tmp_path):
    """``offline_style=compact``: every chain passes the same validator, lists at most 3 rewritten items (the most
    recent related ones of the full style's list), is shorter than the full chain of the same user, and is stored
    under its own version so the two styles never share records."""
    items, train, index = toy_dataset(n_users=30, n_items=60, seed=5)
    full = run_synth(items, train, index, tmp_path / "full", synth_config(jobs=["reason"], **CFG))
    compact = run_synth(items, train, index, tmp_path / "compact",
                        synth_config(jobs=["reason"], offline_style="compact", **CFG))
    assert full["jobs"]["reason"]["ok"] == compact["jobs"]["reason"]["ok"] == 30
    known = {"".join(t) for t in index.values()}
    long, short = rows(tmp_path / "full" / "reasoning.jsonl"), rows(tmp_path / "compact" / "reasoning.jsonl")
    for a, b in zip(long, short):
        ids = ["".join(index[str(i)]) for i in b["history"]]
        validate_reasoning(b["text"], ids, "".join(index[str(b["target"])]), known)
        assert b["rewritten_history"] == a["rewritten_history"][-3:]
        assert b["preference"] == a["preference"] and len(b["text"]) < len(a["text"])
    assert {k for k in read_records(tmp_path / "full" / "store.jsonl")[0]}.isdisjoint(
        read_records(tmp_path / "compact" / "store.jsonl")[0])
    with pytest.raises(ValueError, match="offline_style"):
        synth_config(offline_style="terse")
