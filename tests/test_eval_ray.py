"""Ray scale-out: a local Ray with 2 CPU workers (an ActorPool) gives exactly the single-process numbers."""

import json

import pytest

from gream_pipeline.eval import evaluate
from tests.fixtures.configs import eval_config
from tests.fixtures.tiny import build_tiny_model, fake_examples, fake_index


@pytest.mark.timeout(240)
def test_ray_sharded_eval_equals_single_process(tmp_path):
    pytest.importorskip("ray")
    d = build_tiny_model(tmp_path / "model", seed=7)
    index = fake_index(30, codes=(3, 3, 2, 3), seed=8)
    examples = fake_examples(index, 7, history=3, seed=9)
    base = dict(dataset="Scientific", batch_size=2, num_beams=8, n_samples=4, ks=[1, 2, 4], top_k=4,
                max_new_tokens=6, progress=False, plots=False, engine={"num_threads": 1, "dtype": "float32"})
    single = evaluate(d, index, examples, tmp_path / "single", eval_config(**base))
    ray_cfg = eval_config(**base, ray={"enabled": True, "num_workers": 2, "num_cpus_per_worker": 1})
    sharded = evaluate(d, index, examples, tmp_path / "ray", ray_cfg)
    strip = lambda m: {k: v for k, v in m.items() if k != "meta"}  # noqa: E731
    assert strip(sharded) == strip(single)
    assert sharded["meta"]["ray_workers"] == 2 and single["meta"]["ray_workers"] == 0
    preds = [(tmp_path / x / "predictions.jsonl").read_text().splitlines() for x in ("single", "ray")]
    assert [json.loads(x) for x in preds[0]] == [json.loads(x) for x in preds[1]]  # same IDs, scores, samples
