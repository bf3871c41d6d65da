"""Bad input: a DataError naming the file and key, a non-zero CLI exit, and no stage output written."""

import gzip
import json

import pytest

from gream_pipeline.data.lcrec import load_lcrec
from gream_pipeline.errors import DataError
from tests.conftest import run_gream, write_lcrec

ITEMS = {str(i): {"title": f"item {i}", "description": "", "brand": "b", "categories": "c"} for i in range(6)}
GOOD = {"u1": [0, 1, 2, 3], "u2": [2, 3, 4, 5]}


def _expect(folder, *fragments):
    with pytest.raises(DataError) as err:
        load_lcrec(folder, "D")
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_missing_file(tmp_path):
    folder = tmp_path / "D"
    folder.mkdir()
    _expect(folder, "D.inter.json", "file not found")


def test_malformed_json(tmp_path):
    folder = write_lcrec(tmp_path / "D", "D", GOOD, ITEMS)
    (folder / "D.item.json").write_text('{"0": {"title": "x"},\n "1": ')
    _expect(folder, "D.item.json", "malformed JSON at line 2")


def test_user_with_too_few_items(tmp_path):
    folder = write_lcrec(tmp_path / "D", "D", {**GOOD, "lonely": [3]}, ITEMS)
    _expect(folder, "D.inter.json", "'lonely'", "1 item(s)")


def test_unknown_item(tmp_path):
    folder = write_lcrec(tmp_path / "D", "D", {**GOOD, "u3": [1, 99]}, ITEMS)
    _expect(folder, "D.inter.json", "'u3'", "unknown item id 99")


def test_duplicate_keys_and_repeated_items(tmp_path):
    folder = write_lcrec(tmp_path / "D", "D", GOOD, ITEMS)
    (folder / "D.item.json").write_text('{"0": {"title": "a"}, "0": {"title": "b"}}')
    _expect(folder, "D.item.json", "duplicate key '0'")
    folder = write_lcrec(tmp_path / "E", "D", {"u1": [0, 1, 0]}, ITEMS)
    _expect(folder, "D.inter.json", "'u1'", "duplicate item id 0")


def test_empty_title_is_a_kept_gap_and_bad_id_an_error(tmp_path):
    folder = write_lcrec(tmp_path / "D", "D", GOOD, {**ITEMS, "4": {"title": "  ", "description": "d"}})
    ds = load_lcrec(folder, "D")
    assert ds.items[4] == {"title": "", "description": "d", "brand": "", "categories": ""}
    folder = write_lcrec(tmp_path / "E", "D", {"u1": [0, "x1"]}, ITEMS)
    _expect(folder, "D.inter.json", "'u1'", "'x1' is not an integer")


def test_cli_exits_nonzero_and_writes_nothing(tmp_path):
    folder = write_lcrec(tmp_path / "D", "D", {**GOOD, "u3": [1, 99]}, ITEMS)
    runs = tmp_path / "runs"
    proc = run_gream("stage=data", "dataset=lcrec", f"dataset.path={folder}", runs_dir=runs, check=False)
    assert proc.returncode == 2
    assert "unknown item id 99" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    run_dir = runs / "demo_cpu-D"
    assert not (run_dir / "data").exists()
    assert not list(run_dir.glob(".data.tmp-*")) if run_dir.exists() else True


def test_cli_keeps_previous_output_when_a_rerun_fails(tmp_path):
    folder = write_lcrec(tmp_path / "D", "D", GOOD, ITEMS)
    runs = tmp_path / "runs"
    run_gream("stage=data", "dataset=lcrec", f"dataset.path={folder}", runs_dir=runs)
    before = (runs / "demo_cpu-D" / "data" / "train.jsonl").read_text()
    (folder / "D.inter.json").write_text(json.dumps({**GOOD, "u3": [1, 99]}))
    proc = run_gream("stage=data", "dataset=lcrec", f"dataset.path={folder}", runs_dir=runs, check=False)
    assert proc.returncode == 2
    assert (runs / "demo_cpu-D" / "data" / "train.jsonl").read_text() == before
    assert not list((runs / "demo_cpu-D").glob(".data.tmp-*"))


def test_raw_amazon_bad_line_is_reported(tmp_path):
    reviews, meta = tmp_path / "r.json.gz", tmp_path / "m.json.gz"
    with gzip.open(reviews, "wt") as h:
        h.write(json.dumps({"reviewerID": "A", "asin": "x", "unixReviewTime": 1}) + "\n{broken\n")
    with gzip.open(meta, "wt") as h:
        h.write(json.dumps({"asin": "x", "title": "t"}) + "\n")
    proc = run_gream("stage=data", "dataset=amazon_raw", f"dataset.reviews={reviews}", f"dataset.meta={meta}",
                     runs_dir=tmp_path / "runs", check=False)
    assert proc.returncode == 2
    assert "r.json.gz: line 2: malformed record" in proc.stdout + proc.stderr
