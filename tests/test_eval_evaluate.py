"""`evaluate` end to end on a tiny random Qwen3: artifacts, metric keys, prompt functions, engine selection."""

import json

import pytest

from gream_pipeline.eval import EvalConfig, evaluate
from tests.fixtures.configs import eval_config
from tests.fixtures.tiny import build_tiny_model, fake_examples, fake_index

SEEN: list[list[str]] = []


def recording_prompt(history_ids):
    """A prompt function returning a plain string (used verbatim, no chat template)."""
    SEEN.append(list(history_ids))
    return "History: " + " ".join(history_ids) + "\nNext:"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = build_tiny_model(tmp_path_factory.mktemp("ev") / "model", seed=4)
    index = fake_index(30, codes=(3, 3, 2, 3), seed=5)
    return d, index, fake_examples(index, 5, history=4, seed=6)


def test_evaluate_writes_metrics_predictions_report_plots(setup, tmp_path):
    d, index, examples = setup
    cfg = eval_config(dataset="Instruments", batch_size=2, n_samples=10, think_budget=8, progress=False,
                      engine={"num_threads": 1, "dtype": "float32"})
    m = evaluate(d, index, examples, tmp_path, cfg)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    assert list(m["direct"]) == ["recall@1", "recall@5", "recall@10", "ndcg@1", "ndcg@5", "ndcg@10"]
    assert set(m["reason"]) == {"pass@1", "pass@5", "pass@10", "valid_answer_rate", "well_formed_rate",
                                "natural_close_rate", "generated_tokens_per_user"}
    assert set(m["direct_item"]) == set(m["direct"])
    recs = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["user"] for r in recs] == [e["user"] for e in examples]
    valid = {"".join(t) for t in index.values()}
    for r, e in zip(recs, examples):
        ids = [h["id"] for h in r["direct"]]
        assert len(ids) == 10 and len(set(ids)) == 10 and set(ids) <= valid
        assert [h["score"] for h in r["direct"]] == sorted((h["score"] for h in r["direct"]), reverse=True)
        assert r["target_id"] == "".join(index[str(e["target"])])
        assert r["reason"]["n"] == 10 and len(r["reason"]["texts"]) == 10
        assert sum(r["reason"]["closed_naturally"]) == r["reason"]["natural_close"]
    hits = sum(r["target_id"] in [h["id"] for h in r["direct"]] for r in recs)
    assert m["direct"]["recall@10"] == pytest.approx(hits / len(recs))
    report = (tmp_path / "report.md").read_text()
    assert "paper: GREAM-Align | 0.0711 | 0.1026 | 0.1207" in report
    for png in ("direct_metrics.png", "target_rank.png", "pass_at_k.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert png in report
    assert m["meta"]["n_users"] == 5 and m["meta"]["users_per_s"] > 0


def test_prompt_fn_callable_and_direct_only(setup, tmp_path):
    d, index, examples = setup
    SEEN.clear()
    cfg = eval_config(modes=["direct"], batch_size=4, num_beams=5, top_k=5, ks=[1, 5],
                      direct_prompt_fn=recording_prompt, progress=False, plots=False,
                      engine={"num_threads": 1, "dtype": "float32"})
    m = evaluate(d, index, examples[:3], tmp_path, cfg)
    assert SEEN == [["".join(index[str(i)]) for i in e["history"]] for e in examples[:3]]
    assert set(m) == {"direct", "direct_item", "meta"}
    assert list(m["direct"]) == ["recall@1", "recall@5", "ndcg@1", "ndcg@5"]
    assert "No published numbers" in (tmp_path / "report.md").read_text()


def test_prompt_fn_from_string():
    from gream_pipeline.eval.prompts import default_reason_prompt, resolve_prompt_fn, user_turn

    assert resolve_prompt_fn("gream_pipeline.eval.prompts:user_turn", default_reason_prompt) is user_turn
    assert resolve_prompt_fn(None, default_reason_prompt) is default_reason_prompt
    with pytest.raises(ValueError):
        resolve_prompt_fn("no_colon", default_reason_prompt)


def test_vllm_engine_missing_is_a_clear_error(setup, tmp_path):
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm installed")
    except ImportError:
        pass
    d, index, examples = setup
    cfg = eval_config(modes=["direct"], engine={"kind": "vllm"}, progress=False)
    with pytest.raises(ImportError, match="optional extra"):
        evaluate(d, index, examples[:1], tmp_path, cfg)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown eval config keys"):
        EvalConfig.from_dict({"beams": 20})
