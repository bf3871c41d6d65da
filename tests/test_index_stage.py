"""The index stage end to end on real data: Instruments (collaborative) and a Scientific subset (sentence)."""

import json

import numpy as np

from tests.conftest import run_gream, subset_lcrec


def _report(run_dir):
    return json.loads((run_dir / "index" / "report.json").read_text())


def test_instruments_collaborative_index(instruments, tmp_path):
    run_gream("stage=data", "dataset=instruments", runs_dir=tmp_path)
    run_gream("stage=index", "dataset=instruments", runs_dir=tmp_path)
    run_dir = tmp_path / "demo_cpu-instruments"
    report = _report(run_dir)
    index = json.loads((run_dir / "index" / "index.json").read_text())
    assert report["num_items"] == len(index) == 9922 and report["embedder"] == "collaborative"
    assert report["codebook_sizes"] == [256] * 4 and report["unique_after_slot"]
    assert report["collision_rate_before_slot"] < 0.05
    ids = ["".join(t) for t in index.values()]
    assert len(set(ids)) == len(ids)
    for tokens in index.values():
        assert 4 <= len(tokens) <= 5
        assert all(0 <= int(t[3:-1]) < 256 for t in tokens[:4])
        assert [t[1] for t in tokens] == list("abcde"[: len(tokens)])
    assert (run_dir / "index" / "code_usage.png").stat().st_size > 10_000
    vocab = json.loads((run_dir / "index" / "vocab.json").read_text())
    assert len(vocab) == 4 * 256 + report["conflict_slot_size"]
    rerun = run_gream("stage=index", "dataset=instruments", runs_dir=tmp_path)
    assert "up to date" in rerun.stdout + rerun.stderr
    run_gream("stage=index", "dataset=instruments", "index.levels=3", "index.codebook_size=64", runs_dir=tmp_path)
    small = _report(run_dir)
    assert small["levels"] == 3 and small["codebook_sizes"] == [64] * 3
    assert small["collision_rate_before_slot"] > report["collision_rate_before_slot"]


def test_sentence_index_on_scientific_subset(scientific, tmp_path):
    folder = subset_lcrec(scientific, "Scientific", tmp_path / "Sci", num_users=150)
    for stage in ("data", "index"):
        run_gream(f"stage={stage}", "dataset=lcrec", f"dataset.path={folder}", "index.codebook_size=16",
                  "index.embedder=sentence", runs_dir=tmp_path / "runs")
    run_dir = tmp_path / "runs" / "demo_cpu-Sci"
    report = _report(run_dir)
    items = json.loads((folder / "Scientific.item.json").read_text())
    assert report["num_items"] == len(items) and report["embedding_dim"] == 384
    emb = np.load(run_dir / "index" / "embeddings.npy")
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    # semantic sanity: an item's nearest neighbour shares its first-level code far more often than chance (1/16)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -1)
    codes = np.load(run_dir / "index" / "codes.npy")
    same = (codes[sims.argmax(1), 0] == codes[:, 0]).mean()
    assert same > 0.5, same
    assert report["unique_after_slot"]


def test_index_does_not_depend_on_the_thread_count(scientific, tmp_path):
    # without the pin, scipy's SVD and faiss k-means give other embeddings and codes at another thread count
    outputs = {}
    for threads in ("1", "4"):
        env = {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        for stage in ("data", "index"):
            run_gream(f"stage={stage}", "dataset=scientific", runs_dir=tmp_path / threads, env=env)
        run_dir = tmp_path / threads / "demo_cpu-scientific" / "index"
        outputs[threads] = (np.load(run_dir / "embeddings.npy"), np.load(run_dir / "codes.npy"))
    assert np.array_equal(outputs["1"][0], outputs["4"][0])
    assert np.array_equal(outputs["1"][1], outputs["4"][1])
