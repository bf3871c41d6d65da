"""Raw Amazon 2014/2018 dumps → LC-Rec format: 5-core filtering, chronological order, dedup, renumbering."""

import gzip
import json

from gream_pipeline.data.amazon_raw import k_core, preprocess
from tests.conftest import run_gream


def _write_fixture(tmp_path, release: str):
    """6 core users × 6 core items, all interacting (5-core survivors) + noise that 5-core must remove."""
    reviews, meta = [], []
    users, items = [f"U{u}" for u in range(6)], [f"B{i:03d}" for i in range(6)]
    t = 1_000_000
    for u, user in enumerate(users):
        for k, item in enumerate(reversed(items) if u % 2 else items):  # odd users buy in reverse order
            t += 1
            reviews.append({"reviewerID": user, "asin": item, "unixReviewTime": t - 2 * k * (u == 5),
                            "overall": 5.0, "reviewText": f"{user} likes {item}"})
    reviews.append({"reviewerID": "U0", "asin": "B000", "unixReviewTime": t + 5, "overall": 1.0})  # repeat purchase
    reviews += [{"reviewerID": "NOISE", "asin": "B000", "unixReviewTime": 5}]  # user with 1 interaction
    reviews += [{"reviewerID": u, "asin": "RARE", "unixReviewTime": 7} for u in users[:3]]  # item with 3 users
    for i, item in enumerate(items + ["RARE"]):
        if release == "2014":
            meta.append(repr({"asin": item, "title": f"Widget &amp; {i}", "description": "<b>Great</b> tool",
                              "brand": "Acme", "categories": [["Tools", "Widgets"]]}))
        else:
            meta.append(json.dumps({"asin": item, "title": f"Widget &amp; {i}", "description": ["<b>Great</b>", "tool"],
                                    "brand": "Acme", "category": ["Tools", "Widgets"]}))
    meta.append(json.dumps({"asin": "NOTITLE", "title": ""}))
    rpath, mpath = tmp_path / f"reviews_{release}.json.gz", tmp_path / f"meta_{release}.json.gz"
    with gzip.open(rpath, "wt") as h:
        h.write("\n".join(json.dumps(r) for r in reviews) + "\n")
    with gzip.open(mpath, "wt") as h:
        h.write("\n".join(meta) + "\n")
    return rpath, mpath


def test_k_core_is_iterative():
    # item z has 2 users; dropping it leaves user c with 1 item, which must then go too (k=2)
    pairs = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "z")]
    assert k_core(pairs, 2) == {("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")}


def test_preprocess_2014_and_2018(tmp_path):
    for release in ("2014", "2018"):
        rpath, mpath = _write_fixture(tmp_path, release)
        out = preprocess(rpath, mpath, k=5)
        assert out["stats"]["users"] == 6 and out["stats"]["items"] == 6 and out["stats"]["interactions"] == 36
        assert all(len(seq) == 6 and len(set(seq)) == 6 for seq in out["inter"].values())
        # items numbered by first appearance in time order: user U0 bought B000..B005 first
        assert out["inter"]["0"] == [0, 1, 2, 3, 4, 5]
        assert out["inter"]["1"] == [5, 4, 3, 2, 1, 0]
        assert out["item"]["0"] == {"title": "Widget & 0", "description": "Great tool", "brand": "Acme",
                                    "categories": "Tools, Widgets"}
        assert out["reviews"]["0"][0] == "U0 likes B000"


def test_data_stage_on_raw_dump(tmp_path):
    rpath, mpath = _write_fixture(tmp_path, "2018")
    run_gream("stage=data", "dataset=amazon_raw", "dataset.name=toy", f"dataset.reviews={rpath}",
              f"dataset.meta={mpath}", runs_dir=tmp_path / "runs")
    out = tmp_path / "runs" / "demo_cpu-toy" / "data"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["split"] == {"train": 6 * 3, "valid": 6, "test": 6}
    assert len(json.loads((out / "reviews.json").read_text())) == 6
