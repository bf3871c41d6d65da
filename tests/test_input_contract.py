"""The input contract, through the real CLI.

Every bad input — a file, a field of a file, a config value, a command-line argument — ends in exit code 2 and one
line naming the file/key/value at fault and what is allowed, with no traceback and nothing written (a previous good
output stays byte-identical). Content gaps (an empty title or description) are kept, counted in ``stats.json`` and
warned about once; sparse or huge item ids are remapped to dense ids with the mapping kept; legal but unwise values
give a warning with the consequence. The datasets are tiny LC-Rec folders and raw dumps written by the tests.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gream_pipeline.data.amazon_raw import preprocess
from gream_pipeline.data.lcrec import load_lcrec
from gream_pipeline.errors import DataError
from tests.conftest import run_gream, write_lcrec

ITEMS = {str(i): {"title": f"item {i}", "description": f"about {i}", "brand": "b", "categories": "c"}
         for i in range(6)}
INTER = {"u1": [0, 1, 2, 3], "u2": [2, 3, 4, 5], "u3": [5, 0, 1]}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A completed data stage (run ``good``) that every failing re-run below must leave byte-identical."""
    root = tmp_path_factory.mktemp("contract")
    folder = write_lcrec(root / "data" / "D", "D", INTER, ITEMS)
    runs = root / "runs"
    run_gream("stage=data", "dataset=lcrec", f"dataset.path={folder}", "run_name=good", runs_dir=runs)
    return root, runs, snapshot(runs)


def fails(runs: Path, *overrides: str, expect: tuple[str, ...], env: dict | None = None) -> str:
    """Run the CLI; assert exit 2, no traceback and exactly one output line holding every fragment of ``expect``."""
    proc = run_gream(*overrides, runs_dir=runs, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if expect[0] in line]
    assert len(lines) == 1, out
    for fragment in expect:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def fails_on_good_run(good, *overrides: str, expect: tuple[str, ...]) -> str:
    """``fails`` against the good run's folder (same run name): its files must stay byte-identical."""
    _, runs, before = good
    line = fails(runs, *overrides, "run_name=good", expect=expect)
    assert snapshot(runs) == before, "a failed re-run changed the previous good output"
    return line


def loader_fails(fn, *args, expect: tuple[str, ...]) -> None:
    """The loader the data stage runs raises one DataError line holding every fragment (the in-process twin of
    ``fails``, for the many cases of a class; one case of each class also goes through the CLI)."""
    with pytest.raises(DataError) as err:
        fn(*args)
    message = str(err.value)
    assert "\n" not in message
    for fragment in expect:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def first_via_cli(cases: list) -> list:
    """Parametrize ``cases`` with a flag that is true for the first one only (that one also runs the CLI)."""
    return [pytest.param(*case, i == 0, id=f"case{i}{'-cli' if i == 0 else ''}") for i, case in enumerate(cases)]


def lcrec(root: Path, name: str, inter=INTER, items=ITEMS, reviews=None) -> Path:
    folder = write_lcrec(root / name, name, inter, items)
    if reviews is not None:
        (folder / f"{name}.reviews.json").write_text(json.dumps(reviews))
    return folder


def data(folder: Path) -> tuple[str, ...]:
    return ("stage=data", "dataset=lcrec", f"dataset.path={folder}")


def write_gz(path: Path, lines: list[str] | bytes) -> Path:
    with gzip.open(path, "wb") as handle:
        handle.write(lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode())
    return path


def raw_dump(root: Path, meta: list[dict] | None = None, reviews: list[dict] | None = None) -> tuple[Path, Path]:
    """A raw Amazon 2018 dump: 6 users × 6 items (all survive 5-core)."""
    if reviews is None:
        reviews = [{"reviewerID": f"U{u}", "asin": f"B{i}", "unixReviewTime": 100 * u + i, "reviewText": "ok"}
                   for u in range(6) for i in range(6)]
    if meta is None:
        meta = [{"asin": f"B{i}", "title": f"Widget {i}", "description": ["nice"], "brand": "Acme",
                 "category": ["Tools", "Widgets"]} for i in range(6)]
    root.mkdir(parents=True, exist_ok=True)
    return (write_gz(root / "reviews.json.gz", [json.dumps(r) for r in reviews]),
            write_gz(root / "meta.json.gz", [json.dumps(m) for m in meta]))


def raw(reviews: Path, meta: Path) -> tuple[str, ...]:
    return ("stage=data", "dataset=amazon_raw", "dataset.name=toy", f"dataset.reviews={reviews}",
            f"dataset.meta={meta}")


# --- 1. tracebacks instead of a message: encoding, gzip, JSON syntax, types, missing values ---------------------


def test_non_utf8_bytes_name_the_file_and_the_offset(good, tmp_path):
    folder = lcrec(tmp_path, "D")
    text = (folder / "D.item.json").read_text()
    (folder / "D.item.json").write_bytes(text.replace("item 3", "caf\xe9 3").encode("latin-1"))
    offset = text.index("item 3") + 3
    fails_on_good_run(good, *data(folder), expect=("D.item.json", "not UTF-8", "byte 0xe9",
                                                   f"byte offset {offset}", "line 1"))
    (folder / "D.inter.json").write_bytes(b'{"u1": [0, 1],\n "\xff": [2, 3]}')
    fails_on_good_run(good, *data(folder), expect=("D.inter.json", "not UTF-8", "byte 0xff", "line 2"))


@pytest.mark.parametrize("content, fragments, cli", first_via_cli([
    ("", ("D.item.json", "empty file")),
    ('{"0": {"title": "x"},\n "1": ', ("D.item.json", "malformed JSON at line 2")),
    ("[1, 2]", ("D.item.json", "top level must be a JSON object", "a list")),
    ('{"0": {"title": "a"}, "0": {"title": "b"}}', ("D.item.json", "duplicate key '0'")),
    ('{"0": {"title": NaN}}', ("D.item.json", "NaN is not valid JSON")),
    ('{"x7": {"title": "a"}}', ("D.item.json", "'x7' is not an integer")),
    ('{"-3": {"title": "a"}}', ("D.item.json", "'-3' is negative")),
    ('{"0": "just a title"}', ("D.item.json", "item '0'", "expected an object, got a string")),
]))
def test_malformed_item_file(good, tmp_path, content, fragments, cli):
    folder = lcrec(tmp_path, "D")
    (folder / "D.item.json").write_text(content)
    loader_fails(load_lcrec, folder, "D", expect=fragments)
    if cli:
        fails_on_good_run(good, *data(folder), expect=fragments)


@pytest.mark.parametrize("reviews, fragments, cli", first_via_cli([
    ({"abc": ["fine"]}, ("D.reviews.json", "key 'abc'", "not an integer")),
    ({"1": "fine"}, ("D.reviews.json", "item '1'", "expected a list of review texts", "a string")),
    ({"1": {"text": "fine"}}, ("D.reviews.json", "item '1'", "expected a list of review texts", "an object")),
    ({"1": ["fine", {"text": "x"}]}, ("D.reviews.json", "item '1'", "review 1 is an object", "allowed: a string")),
    ({"1": [3]}, ("D.reviews.json", "item '1'", "review 0 is a number")),
]))
def test_malformed_reviews_file(good, tmp_path, reviews, fragments, cli):
    folder = lcrec(tmp_path, "D", reviews=reviews)
    loader_fails(load_lcrec, folder, "D", expect=fragments)
    if cli:
        fails_on_good_run(good, *data(folder), expect=fragments)


def test_raw_dump_gzip_and_encoding_errors(good, tmp_path):
    reviews, meta = raw_dump(tmp_path / "raw")
    whole = reviews.read_bytes()
    truncated = tmp_path / "truncated.json.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    fails_on_good_run(good, *raw(truncated, meta), expect=("truncated.json.gz", "truncated or corrupt gzip"))
    plain = tmp_path / "plain.json.gz"
    plain.write_text(json.dumps({"asin": "B0", "title": "t"}) + "\n")
    fails_on_good_run(good, *raw(reviews, plain), expect=("plain.json.gz", "not a gzip file"))
    garbage = tmp_path / "garbage.json.gz"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    loader_fails(preprocess, garbage, meta, expect=("garbage.json.gz", "corrupt gzip"))
    latin = write_gz(tmp_path / "latin.json.gz", json.dumps({"asin": "B0", "title": "ok"}).encode() + b"\n" +
                     '{"asin": "B1", "title": "caf\xe9"}\n'.encode("latin-1"))
    loader_fails(preprocess, reviews, latin, expect=("latin.json.gz", "line 2", "not UTF-8", "byte 0xe9",
                                                     "uncompressed"))
    folder_given = tmp_path / "raw"
    fails_on_good_run(good, *raw(folder_given, meta), expect=(str(folder_given), "is a folder", "dataset.reviews"))


@pytest.mark.parametrize("review, fragments, cli", first_via_cli([
    ({"reviewerID": "U0", "asin": "B0"}, ("missing field 'unixReviewTime'",)),
    ({"reviewerID": "U0", "asin": "B0", "unixReviewTime": "soon"}, ("'unixReviewTime' 'soon' is not an integer",)),
    ({"reviewerID": ["U0"], "asin": "B0", "unixReviewTime": 1}, ("field 'reviewerID' is a list",)),
    ({"reviewerID": "U0", "asin": "B0", "unixReviewTime": 1, "reviewText": {"a": 1}},
     ("field 'reviewText' is an object", "allowed: a string or null")),
    ({"asin": "B0", "unixReviewTime": 1}, ("missing field 'reviewerID'",)),
    ({"reviewerID": "U0", "asin": "", "unixReviewTime": 1}, ("field 'asin' is empty",)),
]))
def test_raw_review_fields_are_typed(good, tmp_path, review, fragments, cli):
    reviews, meta = raw_dump(tmp_path / "raw")
    bad = write_gz(tmp_path / "bad.json.gz", [json.dumps({"reviewerID": "U9", "asin": "B0", "unixReviewTime": 1}),
                                              json.dumps(review)])
    loader_fails(preprocess, bad, meta, expect=("bad.json.gz: line 2", *fragments))
    if cli:
        fails_on_good_run(good, *raw(bad, meta), expect=("bad.json.gz: line 2", *fragments))


def test_raw_lines_that_are_no_records(good, tmp_path):
    reviews, meta = raw_dump(tmp_path / "raw")
    bad = write_gz(tmp_path / "bad.json.gz", ['{"asin": "B0", "title": "t"}', "[1, 2, 3]"])
    fails_on_good_run(good, *raw(reviews, bad), expect=("bad.json.gz: line 2", "expected an object, got a list"))
    bad = write_gz(tmp_path / "bad2.json.gz", ['{"asin": "B0", "title": "t"}', "{broken"])
    fails_on_good_run(good, *raw(reviews, bad), expect=("bad2.json.gz: line 2", "malformed record"))


@pytest.mark.parametrize("overrides, fragments", [
    (("dataset=lcrec",), ("missing mandatory value", "dataset.path", "stage")),
    (("stage=data", "dataset=lcrec"), ("missing mandatory value", "dataset.path", "LC-Rec folder")),
    (("stage=data", "dataset=amazon_raw"), ("missing mandatory value", "dataset.reviews", "dataset.meta")),
    (("stage=data", "dataset=amazon_raw", "dataset.reviews=/r.json.gz"), ("missing mandatory value", "dataset.meta")),
    ((), ("missing mandatory value", "stage (choose one of data | enrich | index", "| all")),
    (("stage=sft", "model=qwen3_4b"), ("missing mandatory value", "model.path")),
])
def test_missing_mandatory_values_are_named(tmp_path, overrides, fragments):
    line = fails(tmp_path / "runs", *overrides, expect=fragments)
    assert "MissingMandatoryValue" not in line
    assert not (tmp_path / "runs").exists()


def test_eval_checkpoint_folder_without_tokenizer(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    fails(tmp_path / "runs", "stage=eval", f"eval.checkpoint={ckpt}", expect=("eval.checkpoint=", "no tokenizer files"))
    fails(tmp_path / "runs", "stage=eval", f"eval.checkpoint={tmp_path / 'nope'}",
          expect=("eval.checkpoint=", "does not exist", "auto | sft | rl"))
    fails(tmp_path / "runs", "stage=index", "index.embedder=sentence", f"index.embedder_model={tmp_path / 'nope'}",
          expect=("index.embedder_model=", "does not exist"))
    fails(tmp_path / "runs", "stage=index", "index.embedder=hf_causal_lm", "index.embedder_model=",
          expect=("index.embedder=hf_causal_lm needs index.embedder_model",))
    assert not (tmp_path / "runs").exists()


# --- config values: types, ranges, enumerations, relations (every stage, before anything runs) ------------------


#: Groups of (override, fragments of its message): one CLI call per group (every bad key is named in one line);
#: a key appears once per group and no group mixes values whose relations would hide each other.
BAD_VALUES = {
    "types": [
        ("index.levels=abc", ("index.levels=abc: not an integer", "an integer in 1..25")),
        ("index.batch_size=0", ("index.batch_size=0: out of range", "an integer >= 1")),
        ("index.codebook_size=true", ("index.codebook_size=true: a boolean",)),
        ("index.embedder=bert", ("index.embedder=bert", "sentence | hf_causal_lm | collaborative")),
        ("index.text_fields=[title,price]", ("index.text_fields=", "(price) is not one of title | brand")),
        ("data.min_items_per_user=1", ("data.min_items_per_user=1", ">= 2")),
        ("seed=-1", ("seed=-1: out of range",)),
        ("force=maybe", ("force=maybe: not a boolean", "true or false")),
    ],
    "ranges": [
        ("index.levels=2.5", ("index.levels=2.5: not a whole number",)),
        ("index.codebook_size=0", ("index.codebook_size=0: out of range",)),
        ("sft.lr=-1", ("sft.lr=-1: out of range", "a number > 0")),
        ("sft.epochs=1.5", ("sft.epochs=1.5: not a whole number",)),
        ("sft.launch=maybe", ("sft.launch=maybe", "run | emit")),
        ("sft.seqrec_format=rows", ("sft.seqrec_format=rows", "sequence | continuation | per_target")),
        ("rl.backend=ray", ("rl.backend=ray", "trl | verl")),
        ("rl.mode=both", ("rl.mode=both", "direct | reason")),
        ("sft.bf16=sometimes", ("sft.bf16=sometimes: not a boolean", "true, false or auto")),
    ],
    "enumerations": [
        ("index.levels=26", ("index.levels=26: out of range", "1..25")),
        ("sft.lr=abc", ("sft.lr=abc: not a number",)),
        ("eval.top_p=0", ("eval.top_p=0", "> 0 and <= 1")),
        ("eval.temperature=-0.1", ("eval.temperature=-0.1", ">= 0")),
        ("eval.splits=[train]", ("eval.splits=", "test | valid")),
        ("eval.modes=[]", ("eval.modes=[]: empty", "direct | reason")),
        ("eval.engine.kind=tpu", ("eval.engine.kind=tpu", "hf |", "openai")),
        ("eval.engine.dtype=fp8", ("eval.engine.dtype=fp8", "auto | float32 | bfloat16 | float16")),
        ("eval.checkpoint=''", ("eval.checkpoint='': empty", "auto | sft | rl")),
    ],
    "relations": [
        ("index.levels=''", ("index.levels='': not an integer",)),
        ("sft.lr=nan", ("sft.lr=nan: not a finite number",)),
        ("eval.top_k=5", ("eval.top_k=5 is smaller than max(eval.ks)=10",)),
        ("rl.trl.per_device_train_batch_size=30", ("per_device_train_batch_size=30", "multiple of "
                                                                                      "rl.trl.num_generations=8")),
        ("synth.base_url=localhost:8000", ("synth.base_url=localhost:8000", "http(s)://")),
        ("synth.min_step_chars=5000", ("synth.min_step_chars=5000 is larger than synth.max_step_chars",)),
    ],
    "lengths": [
        ("eval.num_beams=5", ("eval.num_beams=5 is smaller than eval.top_k=10",)),
        ("index.codebook_sizes=[8,8]", ("index.codebook_sizes=[8, 8] has 2 entries but index.levels=4",)),
    ],
    "sections": [("index=3", ("index=3", "not a section"))],
}


@pytest.mark.parametrize("group", list(BAD_VALUES))
def test_bad_config_values_are_named_before_any_stage(good, group):
    cases = BAD_VALUES[group]
    line = fails_on_good_run(good, "stage=data", *(o for o, _ in cases), expect=(cases[0][1][0],))
    for _, fragments in cases:
        for fragment in fragments:
            assert fragment in line, f"{fragment!r} not in {line!r}"


def test_several_bad_values_in_one_line(tmp_path):
    line = fails(tmp_path / "runs", "stage=data", "index.levels=abc", "sft.lr=-1", "eval.top_p=2",
                 expect=("index.levels=abc",))
    assert "sft.lr=-1" in line and "eval.top_p=2" in line
    assert not (tmp_path / "runs").exists()


def test_enriched_texts_need_a_text_embedder_when_the_index_runs(good):
    for stage in ("index", "all"):
        fails_on_good_run(good, f"stage={stage}", "index.text_source=enriched", "index.embedder=collaborative",
                          expect=("index.text_source=enriched needs a text embedder", "sentence | hf_causal_lm"))


def test_index_levels_message_names_levels_not_codebook_sizes(good):
    for value in ("-1", "0"):
        line = fails_on_good_run(good, "stage=index", f"index.levels={value}", expect=(f"index.levels={value}",))
        assert "codebook_sizes" not in line


def test_bad_command_line_arguments_are_one_line(tmp_path):
    fails(tmp_path / "runs", "stage=data", "index.levle=3", expect=("bad command-line argument", "index.levle"))
    fails(tmp_path / "runs", "stage=data", "dataset=nope", expect=("bad command-line argument", "dataset/nope",
                                                                     "scientific"))
    fails(tmp_path / "runs", "stage=data", "index.levels=[1", expect=("bad command-line argument",))
    fails(tmp_path / "runs", "stage=nope", expect=("stage=nope", "data | enrich"))
    assert not (tmp_path / "runs").exists()


# --- 2. bad values inside files are no longer accepted silently -----------------------------------------------


@pytest.mark.parametrize("record, fragments, cli", first_via_cli([
    ({"title": "t", "description": {"text": "d"}}, ("field 'description' is an object", "a string or null")),
    ({"title": True}, ("field 'title' is a boolean", "(true)")),
    ({"title": 1984}, ("field 'title' is a number", "(1984)")),
    ({"title": ["a", "b"]}, ("field 'title' is a list",)),
    ({"title": "t", "brand": {"name": "x"}}, ("field 'brand' is an object",)),
    ({"title": "t", "categories": ["a", {"b": 1}]}, ("field 'categories': element 1 is an object",)),
    ({"title": "t", "categories": 7}, ("field 'categories' is a number", "a list of strings")),
    ({"title": "t", "description": False}, ("field 'description' is a boolean", "(false)")),
]))
def test_non_string_item_fields_are_errors(good, tmp_path, record, fragments, cli):
    folder = lcrec(tmp_path, "D", items={**ITEMS, "4": record})
    loader_fails(load_lcrec, folder, "D", expect=("D.item.json", "item '4'", *fragments))
    if cli:
        fails_on_good_run(good, *data(folder), expect=("D.item.json", "item '4'", *fragments))


def test_raw_category_string_is_one_category_and_bad_types_are_errors(good, tmp_path):
    meta = [{"asin": f"B{i}", "title": f"Widget {i}", "category": "Tools & Home"} for i in range(6)]
    reviews, meta_path = raw_dump(tmp_path / "raw", meta=meta)
    runs = tmp_path / "runs"
    run_gream(*raw(reviews, meta_path), runs_dir=runs)
    items = json.loads((runs / "demo_cpu-toy" / "data" / "items.json").read_text())
    assert {v["categories"] for v in items.values()} == {"Tools & Home"}
    bad_meta = [*meta[:5], {"asin": "B5", "title": "W", "description": {"x": 1}}]
    _, bad = raw_dump(tmp_path / "bad", meta=bad_meta)
    fails_on_good_run(good, *raw(reviews, bad), expect=("meta.json.gz: line 6", "field 'description' is an object"))
    bad_meta = [*meta[:5], {"asin": "B5", "title": "W", "categories": [["Tools", 3]]}]
    _, bad = raw_dump(tmp_path / "bad2", meta=bad_meta)
    fails_on_good_run(good, *raw(reviews, bad), expect=("meta.json.gz: line 6", "'categories'", "a number"))


def test_unwise_values_warn_with_the_consequence(tmp_path):
    folder = lcrec(tmp_path, "D")
    runs = tmp_path / "runs"
    proc = run_gream(*data(folder), "index.codebook_size=1", "eval.n_samples=5", runs_dir=runs)
    out = proc.stdout + proc.stderr
    assert "index.codebook_size=1" in out and "conflict slot" in out
    assert "eval.n_samples=5" in out and "not computed" in out
    proc = run_gream("stage=index", "dataset=lcrec", f"dataset.path={folder}", "index.levels=2",
                     "index.codebook_size=16", runs_dir=runs)
    out = proc.stdout + proc.stderr
    assert "index.codebook_size=16 is larger than the catalogue (6 items)" in out
    report = json.loads((runs / "demo_cpu-D" / "index" / "report.json").read_text())
    assert any("larger than the catalogue" in w for w in report["warnings"])


# --- content gaps: kept, counted, warned once ------------------------------------------------------------------


def test_empty_titles_and_descriptions_are_kept_counted_and_warned_once(tmp_path):
    items = {**ITEMS,
             "1": {"title": "", "description": "still described", "brand": "b", "categories": "c"},
             "2": {"title": "\u0001\u0007 \t", "description": None, "brand": "b"},  # control characters only
             "3": {"title": None, "description": "   ", "brand": "", "categories": []},
             "4": {"description": "no title key at all"}}
    folder = lcrec(tmp_path, "D", items=items)
    runs = tmp_path / "runs"
    proc = run_gream(*data(folder), runs_dir=runs)
    out = proc.stdout + proc.stderr
    assert out.count("empty title") == 1, out
    assert "4 item(s) with an empty title, 2 with an empty description (1 with no text at all)" in out
    out_dir = runs / "demo_cpu-D" / "data"
    stats = json.loads((out_dir / "stats.json").read_text())
    assert stats["text_gaps"] == {"empty_title": 4, "empty_description": 2, "no_text": 1}
    assert stats["items"] == 6
    kept = json.loads((out_dir / "items.json").read_text())
    assert kept["2"] == {"title": "", "description": "", "brand": "b", "categories": ""}
    assert kept["1"]["description"] == "still described"

    from gream_pipeline.index.text import fuse_item_text

    assert fuse_item_text(kept["1"]) == "Brand: b\nCategories: c\nDescription: still described"
    assert fuse_item_text(kept["3"]) == ""


def test_catalogue_without_any_title_is_an_error(good, tmp_path):
    items = {str(i): {"title": "", "description": "d"} for i in range(6)}
    fails_on_good_run(good, *data(lcrec(tmp_path, "D", items=items)), expect=("D.item.json", "none of its 6 items"))


def test_raw_dump_with_empty_titles_loads(tmp_path):
    meta = [{"asin": f"B{i}", "title": "" if i < 2 else f"Widget {i}", "description": ["nice"]} for i in range(6)]
    reviews, meta_path = raw_dump(tmp_path / "raw", meta=meta)
    runs = tmp_path / "runs"
    run_gream(*raw(reviews, meta_path), runs_dir=runs)
    stats = json.loads((runs / "demo_cpu-toy" / "data" / "stats.json").read_text())
    assert stats["items"] == 6 and stats["text_gaps"]["empty_title"] == 2


# --- 3. unbounded ids: remapped, mapping kept ------------------------------------------------------------------


def test_huge_and_sparse_item_ids_are_remapped_with_the_mapping_kept(tmp_path):
    big = 2_000_000_000
    inter = {"u1": [7, big, 30, 4], "u2": [30, 4, 999, big], "u3": [999, 7, 30]}
    items = {str(i): {"title": f"item {i}"} for i in (4, 7, 30, 999, big)}
    folder = lcrec(tmp_path, "D", inter=inter, items=items, reviews={str(big): ["great"]})
    runs = tmp_path / "runs"
    run_gream(*data(folder), runs_dir=runs)
    out = runs / "demo_cpu-D" / "data"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["items"] == 5 and stats["item_ids_remapped"] is True
    mapping = json.loads((out / "item_map.json").read_text())
    assert mapping == {"0": 4, "1": 7, "2": 30, "3": 999, "4": big}
    assert json.loads((out / "inter.json").read_text())["u1"] == [1, 4, 2, 0]
    assert json.loads((out / "items.json").read_text())["4"]["title"] == f"item {big}"
    assert json.loads((out / "reviews.json").read_text()) == {"4": ["great"]}
    test_rows = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert all(mapping[str(r["target"])] == r["target_item"] for r in test_rows)
    assert {r["target_item"] for r in test_rows} == {4, big, 30}
    run_gream("stage=index", "dataset=lcrec", f"dataset.path={folder}", "index.levels=2", "index.codebook_size=2",
              runs_dir=runs)
    index = json.loads((runs / "demo_cpu-D" / "index" / "index.json").read_text())
    assert sorted(index, key=int) == ["0", "1", "2", "3", "4"]


def test_raw_dump_item_map_names_the_asins(tmp_path):
    reviews, meta = raw_dump(tmp_path / "raw")
    runs = tmp_path / "runs"
    run_gream(*raw(reviews, meta), runs_dir=runs)
    mapping = json.loads((runs / "demo_cpu-toy" / "data" / "item_map.json").read_text())
    assert sorted(mapping.values()) == [f"B{i}" for i in range(6)]


# --- 4. misleading messages ------------------------------------------------------------------------------------


def test_dataset_path_given_as_a_file(good, tmp_path):
    folder = lcrec(tmp_path, "D")
    file = folder / "D.inter.json"
    line = fails_on_good_run(good, *data(file), expect=(str(file), "is a file", f"dataset.path={folder}"))
    assert "D.inter.json.inter.json" not in line


def test_dataset_folder_without_the_named_files(good, tmp_path):
    folder = tmp_path / "E"
    folder.mkdir()
    fails_on_good_run(good, *data(folder), expect=("E.inter.json: file not found", "no *.inter.json"))
    write_lcrec(folder, "A", INTER)
    write_lcrec(folder, "B", INTER)
    fails_on_good_run(good, *data(folder), expect=("E.inter.json: file not found", "A.inter.json, B.inter.json",
                                                   "dataset.file_prefix=A"))
    fails_on_good_run(good, *data(tmp_path / "missing"), expect=("dataset folder not found",))


def test_raw_meta_problems_are_blamed_on_the_meta_file(good, tmp_path):
    reviews, _ = raw_dump(tmp_path / "raw")
    _, no_titles = raw_dump(tmp_path / "m1", meta=[{"asin": f"B{i}", "description": "d"} for i in range(6)])
    line = fails_on_good_run(good, *raw(reviews, no_titles), expect=("m1/meta.json.gz", "none of its 6 item records "
                                                                                        "has a title"))
    assert "reviews.json.gz" not in line and "core" not in line
    _, other = raw_dump(tmp_path / "m2", meta=[{"asin": f"X{i}", "title": "t"} for i in range(6)])
    loader_fails(preprocess, reviews, other,
                 expect=("m2/meta.json.gz", "none of the 6 items reviewed", "same category"))
    few = [{"reviewerID": f"U{u}", "asin": f"B{i}", "unixReviewTime": u + i} for u in range(2) for i in range(2)]
    sparse, _ = raw_dump(tmp_path / "r3", reviews=few)
    _, meta = raw_dump(tmp_path / "m3")
    loader_fails(preprocess, sparse, meta, expect=("r3/reviews.json.gz", "5-core", "dataset.k_core"))


# --- 6. run names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("override", ["run_name=../../x", "run_name=", "run_name=a/b", "run_name=..",
                                      "run_name=.", "dataset.name=x/y", "run_name='a\\b'"])
def test_unsafe_run_names(tmp_path, override):
    folder = lcrec(tmp_path, "D")
    runs = tmp_path / "area" / "runs"
    before = tree(tmp_path)
    fails(runs, *data(folder), override, expect=("run_name=", "folder name inside runs_dir"))
    assert tree(tmp_path) == before


# --- the debug switch ------------------------------------------------------------------------------------------


def test_debug_switch_shows_the_traceback(tmp_path, monkeypatch):
    folder = lcrec(tmp_path, "D", items={**ITEMS, "4": {"title": True}})
    proc = run_gream(*data(folder), "debug=true", runs_dir=tmp_path / "runs", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stdout + proc.stderr
    monkeypatch.setenv("GREAM_DEBUG", "1")
    proc = run_gream(*data(folder), runs_dir=tmp_path / "runs", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stdout + proc.stderr
