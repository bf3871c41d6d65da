"""The verl job hands over: `make rl-check` composes exactly the job `rl.backend=verl`
launches and asserts that its files exist where it reads them, that it checkpoints inside the stage output and
writes a Hugging Face model where the eval stage looks, that no logger needs the network, that the loss follows
paper eq. 22 and that the names are gream's; the rl stage's verl branch launches with files that exist at launch
time and links the HF model of verl's last saved step to ``rl/model`` (verl itself replaced by a stand-in that
writes verl 0.9.1's checkpoint layout: the trainer needs GPUs)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

pytest.importorskip("verl")

from tests.conftest import run_gream, write_lcrec  # noqa: E402

N_ITEMS, N_USERS = 30, 40
# verl renders every prompt with the generation prompt: its jobs use `sequence` (or per_target) rows
TINY = ["index.embedder=collaborative", "index.codebook_size=8", "index.kmeans_iters=5", "sft.seqrec_format=sequence"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A small LC-Rec dataset through the real data and index stages (what rl_check and rl consume)."""
    root = tmp_path_factory.mktemp("rlcheck")
    rng = random.Random(0)
    inter = {f"u{u}": rng.sample(range(N_ITEMS), 6) for u in range(N_USERS)}
    items = {str(i): {"title": f"item {i}", "description": f"thing number {i}", "brand": "b", "categories": "c"}
             for i in range(N_ITEMS)}
    folder = write_lcrec(root / "Toy", "Toy", inter, items)
    overrides = ["dataset=lcrec", f"dataset.path={folder}", *TINY]
    for stage in ("data", "index"):
        run_gream(f"stage={stage}", *overrides, runs_dir=root / "runs")
    return root, overrides, root / "runs" / "demo_cpu-Toy"


@pytest.fixture(scope="module")
def checked(prepared):
    root, overrides, run_dir = prepared
    run_gream("stage=rl_check", "force=true", *overrides, runs_dir=root / "runs")
    job = yaml.safe_load((run_dir / "rl_check" / "verl_job.yaml").read_text())
    report = json.loads((run_dir / "rl_check" / "check.json").read_text())
    return run_dir, job, report


def test_composed_job_reads_the_stage_files_and_writes_inside_the_stage(checked):
    run_dir, job, _ = checked
    stage = run_dir / "rl_check"
    files = job["data"]["train_files"] + job["data"]["val_files"]
    assert len(files) == 4 and all(Path(f).is_file() for f in files), files  # all four, where they were read
    assert all(Path(f).parent == stage / "verl" for f in files)
    assert Path(job["trainer"]["default_local_dir"]) == stage / "verl" / "checkpoints"
    env = job["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]
    assert Path(env["TENSORBOARD_DIR"]) == stage / "verl" / "tensorboard"
    assert Path(env["VERL_FILE_LOGGER_PATH"]) == stage / "verl" / "metrics.jsonl"


def test_composed_job_saves_a_hf_model_at_the_last_step(checked):
    _, job, _ = checked
    trainer, actor = job["trainer"], job["actor_rollout_ref"]["actor"]
    assert trainer["save_freq"] > 0  # v1 trainer: saves when save_freq > 0 on multiples and on the last step
    assert "hf_model" in actor["checkpoint"]["save_contents"] and actor["strategy"] in ("fsdp", "fsdp2")


def test_composed_job_logs_offline_follows_eq22_and_has_gream_names(checked):
    _, job, _ = checked
    trainer = job["trainer"]
    assert "wandb" not in trainer["logger"] and set(trainer["logger"]) <= {"console", "tensorboard", "file"}
    assert "tensorboard" in trainer["logger"]
    assert job["actor_rollout_ref"]["actor"]["loss_agg_mode"] == "seq-mean-token-mean"
    assert (trainer["project_name"], trainer["experiment_name"]) == ("gream", "demo_cpu-Toy")


def test_check_json_asserts_the_hand_over(checked):
    run_dir, _, report = checked
    assert report["validate_config"] == "ok" and report["advantage_max_abs_diff"] < 1e-5
    assert set(report["handover_checks"]) == {
        "data_files_exist", "checkpoint_dir_in_stage", "final_step_saved", "hf_model_saved", "hf_model_engine",
        "logs_in_stage", "offline_loggers", "loss_agg_mode_eq22", "gream_names"}
    facts = report["handover"]
    assert facts["missing_data_files"] == [] and facts["hf_model_to"] == str(run_dir / "rl_check" / "model")
    assert ".tmp-" not in json.dumps(report)  # committed paths in the report


def test_rl_check_refuses_a_job_that_would_not_hand_over(prepared):
    root, overrides, run_dir = prepared
    knobs = ["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
             "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
             "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16",
             "trainer.save_freq=-1", "trainer.logger=[console,wandb]",
             "actor_rollout_ref.actor.loss_agg_mode=token-mean"]
    bad = run_gream("stage=rl_check", "force=true", *overrides,
                    "rl.verl_overrides=[" + ",".join(f"'{k}'" for k in knobs) + "]",
                    runs_dir=root / "runs", check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0
    for name in ("final_step_saved", "offline_loggers", "loss_agg_mode_eq22"):
        assert name in out, out[-3000:]


# ----------------------------------------------------------------------------------- the rl stage's verl branch
def _compose_gream(*overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gream_pipeline.cli import RECIPES, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_rl_verl_branch_launches_with_existing_files_and_hands_the_model_to_eval(prepared, monkeypatch):
    """The stage composes + checks the job, verl starts while the parquet files exist at the launch paths, and the
    HF model of the last saved step (verl 0.9.1 layout) ends up at rl/model, loadable, with the checkpoints."""
    from gream_pipeline import pipeline  # noqa: F401  (registers the stages)
    from gream_pipeline.artifacts import write_json
    from gream_pipeline.rl import verl_job
    from gream_pipeline.stages import run_stage
    from tests.fixtures.tiny import build_tiny_model

    root, overrides, run_dir = prepared
    sft = run_dir / "sft"
    build_tiny_model(sft / "model")
    write_json(sft / "manifest.json", {"stage": "sft"})  # a completed sft stage for this test
    cfg = _compose_gream("stage=rl", f"runs_dir={root / 'runs'}", "rl.backend=verl", *overrides)
    seen = {}

    def fake_verl(launched, log_path, env=None):  # what verl's main_ppo + FSDP checkpoint manager leave behind
        config = verl_job.compose(launched)  # the same Hydra composition main_ppo does
        seen["missing"] = [f for f in list(config.data.train_files) + list(config.data.val_files)
                           if not Path(f).is_file()]
        seen["env"] = dict(env or {})
        ckpt = Path(config.trainer.default_local_dir)
        for step in (2, 3):
            build_tiny_model(ckpt / f"global_step_{step}" / "actor" / "huggingface", seed=step)
        (ckpt / "latest_checkpointed_iteration.txt").write_text("3")
        Path(env["VERL_FILE_LOGGER_PATH"]).write_text(
            "".join(json.dumps({"step": s, "data": {"critic/score/mean": s / 10}}) + "\n" for s in (1, 2, 3)))
        Path(log_path).write_text("fake verl\n")

    monkeypatch.setattr(verl_job, "launch", fake_verl)
    run_stage(cfg, "rl")
    assert seen["missing"] == []  # every parquet file existed when verl started
    assert Path(seen["env"]["TENSORBOARD_DIR"]).parent.name == "verl"
    rl = run_dir / "rl"
    summary = json.loads((rl / "rl_summary.json").read_text())
    assert summary["backend"] == "verl" and summary["model_step"] == 3
    assert summary["model_source"] == "verl/checkpoints/global_step_3/actor/huggingface"
    assert summary["metrics"]["logged_steps"] == 3
    assert (rl / "verl" / "checkpoints" / "global_step_3" / "actor" / "huggingface" / "config.json").is_file()
    overrides_txt = (rl / "verl" / "overrides.txt").read_text()
    assert str(rl / "verl" / "train_direct.parquet") in overrides_txt and ".tmp-" not in overrides_txt

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(rl / "model")  # where eval reads rl/model
    want = AutoModelForCausalLM.from_pretrained(rl / "verl/checkpoints/global_step_3/actor/huggingface")
    assert torch.equal(model.lm_head.weight, want.lm_head.weight)
    assert AutoTokenizer.from_pretrained(rl / "model").tokenize("<a_1><b_2>") == ["<a_1>", "<b_2>"]


def test_rl_verl_branch_refuses_a_job_without_hf_model(prepared, monkeypatch):
    from gream_pipeline import pipeline  # noqa: F401
    from gream_pipeline.artifacts import write_json
    from gream_pipeline.errors import GreamError
    from gream_pipeline.rl import verl_job
    from gream_pipeline.stages import run_stage
    from tests.fixtures.tiny import build_tiny_model

    root, overrides, run_dir = prepared
    if not (run_dir / "sft" / "manifest.json").is_file():
        build_tiny_model(run_dir / "sft" / "model")
        write_json(run_dir / "sft" / "manifest.json", {"stage": "sft"})
    cfg = _compose_gream("stage=rl", f"runs_dir={root / 'runs'}", "rl.backend=verl", "force=true", *overrides)
    cfg.rl.verl_overrides = [*cfg.rl.verl_overrides, "actor_rollout_ref.actor.checkpoint.save_contents=[model]"]
    monkeypatch.setattr(verl_job, "launch", lambda *a, **k: pytest.fail("launched a job that cannot hand over"))
    with pytest.raises(GreamError, match="hf_model_saved"):
        run_stage(cfg, "rl")
