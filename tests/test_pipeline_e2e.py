"""Every stage, for real, through the CLI on a small real dataset: data → index → synth → sft → rl → eval."""

import json

import pytest
import yaml

from gream_pipeline.precision import native_bf16
from tests.conftest import run_gream, subset_lcrec

TINY = [
    "index.codebook_size=16", "index.embedder=sentence",  # the text path (the demo default is collaborative)
    "model.arch.hidden_size=64", "model.arch.num_hidden_layers=2", "model.arch.intermediate_size=128",
    "model.arch.vocab_size=1200",
    "sft.epochs=2", "sft.per_device_batch=8", "sft.lr=3e-3", "sft.logging_steps=1",
    "sft.max_seqrec=240", "sft.max_item_tasks=64", "sft.max_preference=16", "sft.max_reason=16",
    "rl.max_prompts=16", "rl.validate.users=10", "rl.validate.reason_users=2", "rl.validate.modes=[direct,reason]",
    "rl.trl.max_steps=2", "rl.compare_grpo=true", "rl.validate.think_budget=24",
    "rl.trl.per_device_train_batch_size=16", "rl.trl.torch_num_threads=1",
    "eval.max_users=20", "eval.reason_max_users=2", "eval.n_samples=2", "eval.think_budget=48",
    "eval.splits=[test,valid]",
]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    from tests.conftest import require_dataset

    root = tmp_path_factory.mktemp("e2e")
    folder = subset_lcrec(require_dataset("Scientific"), "Scientific", root / "Sci", num_users=120)
    overrides = ["stage=all", "dataset=lcrec", f"dataset.path={folder}", *TINY]
    first = run_gream(*overrides, runs_dir=root / "runs", timeout=1500)
    return root / "runs" / "demo_cpu-Sci", overrides, root, first


def test_every_stage_completed_with_manifest(pipeline_run):
    run_dir, _, _, first = pipeline_run
    for stage in ("data", "index", "synth", "sft", "rl", "eval"):
        manifest = json.loads((run_dir / stage / "manifest.json").read_text())
        assert manifest["stage"] == stage and manifest["timings"]["seconds"] > 0
    assert "recall@10" in first.stdout  # the one-screen summary


def test_sft_checkpoint_tokenizer_and_falling_loss(pipeline_run):
    from transformers import AutoTokenizer

    run_dir = pipeline_run[0]
    tok = AutoTokenizer.from_pretrained(run_dir / "sft" / "model")
    assert tok.tokenize("<a_12><b_3><c_7><d_15>") == ["<a_12>", "<b_3>", "<c_7>", "<d_15>"]  # 16 codes per level
    losses = [r["loss"] for r in map(json.loads, (run_dir / "sft" / "model" / "trainer_log.jsonl").open())
              if "loss" in r]
    third = max(1, len(losses) // 3)
    assert sum(losses[-third:]) / third < sum(losses[:third]) / third
    summary = json.loads((run_dir / "sft" / "summary.json").read_text())
    assert summary["seqrec_format"] == "continuation" and summary["reason_examples"] == 16
    train = [json.loads(line) for line in (run_dir / "data" / "train.jsonl").open()]
    items_per_user: dict = {}
    for ex in train:  # each user's training items: its first item plus every training target
        items_per_user.setdefault(ex["user"], set()).update([ex["history"][0], ex["target"]])
    assert summary["targets"]["seqrec"] == sum(map(len, items_per_user.values()))  # every training item, once
    assert len(items_per_user) <= summary["examples"]["seqrec"] <= 240 and summary["cutoff"]["align"]["dropped_turns"] == 0
    assert (run_dir / "sft" / "sft.yaml").read_text().count(str(run_dir / "sft")) >= 3  # final paths


def test_rl_and_eval_outputs(pipeline_run):
    run_dir = pipeline_run[0]
    rl = json.loads((run_dir / "rl" / "rl_summary.json").read_text())
    assert rl["srpo"]["steps"] == 2 and set(rl["valid_before"]) == {"direct", "reason"}
    assert 0.0 <= rl["srpo"]["filtered_group_frac"] <= 1.0
    assert (run_dir / "rl" / "reward_kept.png").is_file()
    assert len(list((run_dir / "rl" / "verl").glob("*.parquet"))) == 4
    index = json.loads((run_dir / "index" / "index.json").read_text())
    valid_ids = {"".join(t) for t in index.values()}
    for rec in map(json.loads, (run_dir / "eval" / "test" / "direct" / "predictions.jsonl").open()):
        assert {h["id"] for h in rec["direct"]} <= valid_ids
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert set(metrics["direct"]) >= {"recall@1", "recall@5", "recall@10", "ndcg@1", "ndcg@5", "ndcg@10"}
    assert set(metrics["reason"]) >= {"pass@1", "pass@5", "pass@10", "valid_answer_rate", "natural_close_rate"}
    assert metrics["reason"]["valid_answer_rate"] == 1.0  # trie-constrained answers
    block = metrics["reason_rank"]
    assert block["users"] == 2 and set(block["reason"]) >= {"recall@1", "recall@10", "ndcg@10"}
    assert set(block["direct_same_users"]) == set(block["reason"])
    assert set(block["cost_per_recommendation"]) == {"direct", "reason"}
    assert block["reason_minus_direct"]["metric"] == "recall@10"
    assert block["reason_minus_direct"]["diff"] == pytest.approx(
        block["reason"]["recall@10"] - block["direct_same_users"]["recall@10"], abs=1e-5)
    assert rl["paired"]["direct"]["users"] == 10 and "srpo-grpo" in rl["paired"]["direct"]
    assert set(rl["paired"]["reason"]["srpo-before"]) >= {"pass@1", "rank_recall@10"}
    assert metrics["direct_users"] == 20 and metrics["splits"]["valid"]["reason_users"] == 2
    for rec in map(json.loads, (run_dir / "eval" / "test" / "direct" / "predictions.jsonl").open()):
        assert len({h["id"] for h in rec["direct"]}) == 10  # 10 distinct IDs per user from the trie beam


def test_rerun_is_a_noop_and_rl_check_passes(pipeline_run):
    run_dir, overrides, root, _ = pipeline_run
    again = run_gream(*overrides, runs_dir=root / "runs")
    out = again.stdout + again.stderr
    assert out.count("up to date") == 6
    refused = run_gream(*overrides[1:], "stage=rl_check", runs_dir=root / "runs", check=False)
    assert refused.returncode == 2 and "needs prompts verl's chat template can express" in refused.stdout
    check = run_gream(*overrides[1:], "stage=rl_check", "sft.seqrec_format=sequence", runs_dir=root / "runs")
    report = json.loads((run_dir / "rl_check" / "check.json").read_text())
    assert report["validate_config"] == "ok" and report["advantage_max_abs_diff"] < 1e-5
    assert "srpo" in report["estimator"] and "up to date" not in check.stdout + check.stderr


def test_gpu_recipe_emits_and_validates_with_a_local_model(pipeline_run):
    """`sft.launch=emit` with a local model (the Qwen3-4B path on GPU hosts): no training, LLaMA-Factory's parser
    accepts the YAML, and the ID tokens are added by LLaMA-Factory itself (non-special `add_tokens`)."""
    run_dir, overrides, root, _ = pipeline_run
    local = run_dir / "sft" / "model"  # any local HF dir stands in for Qwen3-4B here
    kept = [o for o in overrides[1:] if not o.startswith("model.")]  # the tiny architecture knobs
    run_gream(*kept, "stage=sft", "model=qwen3_4b", f"model.path={local}", "sft.launch=emit",
              "sft.bf16=true", "sft.use_cpu=false", "sft.lr=5e-5", "sft.epochs=3", runs_dir=root / "runs")
    args = yaml.safe_load((run_dir / "sft" / "sft.yaml").read_text())
    assert args["model_name_or_path"] == str(local) and args["resize_vocab"] is True
    assert args["add_tokens"].split(",")[:2] == ["<a_0>", "<a_1>"] and args["learning_rate"] == 5e-5
    assert args["num_train_epochs"] == 1.0 and args["disable_shuffling"] is True  # the file holds all 3 epochs
    summary = json.loads((run_dir / "sft" / "summary.json").read_text())
    assert args["bf16"] is True and summary["precision"] == "bf16"  # as configured: the GPU recipe's bf16
    assert summary["launch"] == "emit" and "loss" not in summary and not (run_dir / "sft" / "model").exists()
