"""SFT at cluster scale: the launch counts processes and derives per-device batch ×
accumulation so that the global batch equals the emitted curriculum batch, or refuses; the time-budget path never
becomes DataParallel; two real gloo ranks on CPU consume exactly the scheduled batches."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from gream_pipeline.errors import GreamError
from gream_pipeline.sft.launch import LaunchPlan, plan_launch, split_batch, visible_cuda_ids


def plan(per_device=4, accum=8, world=8, use_cpu=False, devices=8, env=None, **kw) -> LaunchPlan:
    return plan_launch(global_batch=per_device * accum * world, per_device_batch=per_device, grad_accum=accum,
                       world_size=world, use_cpu=use_cpu, devices=devices, env=env or {}, **kw)


# ---------------------------------------------------------------------------------------------- pure arithmetic
def test_split_batch_keeps_the_global_batch_and_the_memory_bound():
    assert split_batch(256, 8, 4) == (4, 8)
    assert split_batch(256, 4, 4) == (4, 16)
    assert split_batch(256, 1, 4) == (4, 64)
    assert split_batch(12, 2, 4) == (3, 2)  # 6 per rank: 4 does not divide it, 3 is the largest that does
    assert split_batch(7, 1, 4) == (1, 7)
    with pytest.raises(GreamError, match="cannot share evenly"):
        split_batch(9, 2, 4)


def test_visible_cuda_ids_reads_like_cuda():
    assert visible_cuda_ids({}) is None
    assert visible_cuda_ids({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_cuda_ids({"CUDA_VISIBLE_DEVICES": "2, 5"}) == ["2", "5"]
    assert visible_cuda_ids({"CUDA_VISIBLE_DEVICES": "0,1,-1,3"}) == ["0", "1"]  # CUDA stops at an invalid id


def test_cpu_default_is_one_plain_process():
    p = plan(per_device=16, accum=1, world=1, use_cpu=True, devices=0)
    assert (p.world_size, p.per_device_batch, p.grad_accum, p.torchrun, p.device) == (1, 16, 1, False, "cpu")
    assert p.env == {"FORCE_TORCHRUN": None, "NPROC_PER_NODE": None} and not p.notes
    env = p.child_env({"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "4", "PATH": "/usr/bin"}, "/venv/bin")
    assert "FORCE_TORCHRUN" not in env and "NPROC_PER_NODE" not in env and env["PATH"] == "/venv/bin:/usr/bin"


def test_paper_geometry_on_8_4_and_1_gpus():
    full = plan()
    assert (full.world_size, full.per_device_batch, full.grad_accum, full.global_batch) == (8, 4, 8, 256)
    assert full.torchrun and full.env == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "8", "NNODES": "1"}
    half = plan(devices=4)  # fewer GPUs than sft.world_size: corrected, same global batch
    assert (half.world_size, half.per_device_batch, half.grad_accum) == (4, 4, 16)
    assert half.world_size * half.per_device_batch * half.grad_accum == 256 and "4 visible" in half.notes[0]
    one = plan(devices=1, env={"CUDA_VISIBLE_DEVICES": "3"})
    assert (one.world_size, one.per_device_batch, one.grad_accum, one.torchrun) == (1, 4, 64, False)
    ds = plan(devices=1, deepspeed=True)  # LF's parser demands torchrun for DeepSpeed, even with one process
    assert ds.torchrun and ds.env["NPROC_PER_NODE"] == "1"


def test_one_process_on_a_multi_gpu_host_sees_one_gpu():
    p = plan(per_device=16, accum=1, world=1, devices=8, env={"CUDA_VISIBLE_DEVICES": "2,5,6,7,0,1,3,4"})
    assert p.world_size == 1 and not p.torchrun and p.env["CUDA_VISIBLE_DEVICES"] == "2"  # no DataParallel
    assert plan(per_device=16, accum=1, world=1, devices=8).env["CUDA_VISIBLE_DEVICES"] == "0"
    budget = plan(per_device=16, accum=1, world=1, devices=4, in_process=True)
    assert budget.env["CUDA_VISIBLE_DEVICES"] == "0" and not budget.torchrun
    four = plan(world=4, devices=8, env={"CUDA_VISIBLE_DEVICES": "4,5,6,7,0,1,2,3"})
    assert four.world_size == 4 and four.env["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"


def test_odd_geometry_is_corrected_or_refused():
    p = plan(per_device=4, accum=1, world=3, devices=2)  # 12 examples on 2 GPUs: 6 each = 3 × 2
    assert (p.world_size, p.per_device_batch, p.grad_accum) == (2, 3, 2)
    with pytest.raises(GreamError, match="9 examples.*2 processes cannot share"):
        plan(per_device=3, accum=1, world=3, devices=2)


def test_cpu_world_size_on_a_gpu_host_hides_the_gpus():
    p = plan(per_device=2, accum=1, world=2, use_cpu=True, devices=2)
    assert p.world_size == 2 and p.torchrun and p.env["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.parametrize("env, match", [
    ({"NPROC_PER_NODE": "3"}, "NPROC_PER_NODE=3.*needs 2"),  # a mismatched 2-process CPU run is refused
    ({"USE_RAY": "1"}, "USE_RAY"), ({"USE_KT": "true"}, "USE_KT"), ({"NNODES": "2"}, "NNODES=2.*every node")])
def test_launchers_gream_cannot_match_are_refused(env, match):
    with pytest.raises(GreamError, match=match):
        plan(per_device=2, accum=1, world=2, use_cpu=True, devices=0, env=env)
    assert plan(per_device=2, accum=1, world=2, use_cpu=True, devices=0, env={"NPROC_PER_NODE": "2"}).world_size == 2


def test_time_budget_path_is_one_process_without_deepspeed():
    with pytest.raises(GreamError, match="time_budget_min.*one process"):
        plan(world=2, devices=2, in_process=True)
    with pytest.raises(GreamError, match="DeepSpeed"):
        plan(per_device=16, accum=1, world=1, devices=1, in_process=True, deepspeed=True)
    with pytest.raises(GreamError, match="emitted batch"):
        plan_launch(global_batch=32, per_device_batch=16, grad_accum=1, world_size=1, use_cpu=True, devices=0,
                    env={})


def test_budget_child_refuses_dataparallel_and_deepspeed(tmp_path, monkeypatch):
    from gream_pipeline.sft import budget, launch

    assert "DataParallel" in budget.single_process_problem({}, {}, cuda_devices=2)
    assert budget.single_process_problem({"use_cpu": True}, {}, cuda_devices=2) is None
    assert budget.single_process_problem({}, {}, cuda_devices=1) is None
    assert "torchrun" in budget.single_process_problem({"deepspeed": "ds.json"}, {}, cuda_devices=1)
    assert "WORLD_SIZE" in budget.single_process_problem({}, {"WORLD_SIZE": "2"}, cuda_devices=0)
    (tmp_path / "a.yaml").write_text(f"output_dir: {tmp_path / 'out'}\n")
    monkeypatch.setattr(launch, "count_devices", lambda: 2)
    assert budget.main([str(tmp_path / "a.yaml"), "60"]) == 3 and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ the stage's wiring
def test_train_hands_the_plan_environment_to_the_child(tmp_path, monkeypatch):
    from gream_pipeline.sft import stage

    seen = {}

    class Proc:
        stdout: list = []
        returncode = 0

        def wait(self):
            return 0

    def fake_popen(cmd, **kw):
        seen.update(cmd=cmd, env=kw["env"])
        return Proc()

    monkeypatch.setattr(stage.subprocess, "Popen", fake_popen)
    p = plan(per_device=2, accum=1, world=2, use_cpu=True, devices=0)
    stage.train(tmp_path / "x.yaml", tmp_path / "log", None, env=p.child_env({"PATH": "/bin"}, "/venv/bin"))
    assert seen["env"]["FORCE_TORCHRUN"] == "1" and seen["env"]["NPROC_PER_NODE"] == "2"
    assert seen["env"]["PATH"].startswith("/venv/bin") and seen["env"]["DISABLE_VERSION_CHECK"] == "1"
    assert "llamafactory.cli" in seen["cmd"][2]


def test_sft_stage_refuses_an_impossible_launch_before_any_work(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from gream_pipeline.sft import launch
    from gream_pipeline.sft.stage import SFT, run_sft
    from gream_pipeline.stages import StageContext

    monkeypatch.setattr(launch, "count_devices", lambda: 2)
    cfg = OmegaConf.create({"run_dir": str(tmp_path / "run"), "sft": {
        "launch": "run", "time_budget_min": None, "world_size": 3, "per_device_batch": 3, "grad_accum": 1,
        "use_cpu": False, "extra": {}}})
    with pytest.raises(GreamError, match="9 examples.*2 processes"):
        run_sft(StageContext(cfg, SFT, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- two real gloo ranks (CPU, torchrun)
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 128, "vocab_size": 400, "max_position_embeddings": 512}
RECORDER = textwrap.dedent('''
    import json, os, sys, yaml
    from transformers import TrainerCallback
    from llamafactory.train.tuner import run_exp

    args, out = yaml.safe_load(open(sys.argv[1])), sys.argv[2]
    rank, seen = int(os.environ["RANK"]), []

    class Recorder(TrainerCallback):
        step = 0

        def on_step_begin(self, targs, state, control, **kw):
            Recorder.step = state.global_step + 1

        def on_train_begin(self, targs, state, control, model=None, **kw):
            def hook(module, a, k):
                mask = k["attention_mask"].bool()
                seen.append([Recorder.step, [ids[m].tolist() for ids, m in zip(k["input_ids"], mask)]])
            model.register_forward_pre_hook(hook, with_kwargs=True)

    run_exp(args, callbacks=[Recorder()])
    json.dump(seen, open(os.path.join(out, f"seen_rank{rank}.json"), "w"))
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """A tiny scratch model, 12 alignment + 6 reasoning examples emitted in global batches of 4, and the plan for
    sft.world_size=2 on CPU (2 per device × 1 × 2 ranks)."""
    from gream_pipeline.sft.llamafactory_glue import emit_dataset, llamafactory_args, validate_args
    from gream_pipeline.sft.model_prep import prepare_model
    from tests.fixtures.tiny import id_tokens

    root = tmp_path_factory.mktemp("ddp")
    align = [{"task": "seqrec", "system": "Recommend.", "prompt": f"History of user {k}: <a_{k}>. Next?",
              "response": f"<a_{k}><b_1><c_2><d_3>"} for k in range(12)]
    reason = [{"task": "reason", "system": "Think.", "prompt": f"Reason about user {k}: <a_{k}>.",
               "response": f"<think> evidence {k} </think> <answer><a_{k}><b_1><c_2><d_3></answer>"} for k in range(6)]
    env = {k: v for k, v in os.environ.items() if k not in ("NPROC_PER_NODE", "NNODES", "FORCE_TORCHRUN")}
    p = plan_launch(global_batch=4, per_device_batch=2, grad_accum=1, world_size=2, use_cpu=True, devices=0, env=env)
    assert (p.world_size, p.per_device_batch, p.grad_accum, p.torchrun) == (2, 2, 1, True)
    summary = emit_dataset(root / "data", align, reason, batch_size=p.global_batch, epochs=2, gamma=1.5, seed=3)
    corpus = [e["system"] + " " + e["prompt"] + " " + e["response"] for e in align + reason]
    model_dir = prepare_model("scratch", root / "model", id_tokens(), corpus, arch=TINY, seed=0)

    def args(out: Path) -> dict:
        a = llamafactory_args(model_dir, root / "data", out, per_device_batch=p.per_device_batch,
                              grad_accum=p.grad_accum, lr=1e-3, cutoff_len=128, use_cpu=True, logging_steps=1,
                              gradient_checkpointing=False, extra={"save_strategy": "no", "plot_loss": False})
        validate_args(a, batch_size=p.global_batch, world_size=p.world_size)
        return a

    child = p.child_env({**env, "DISABLE_VERSION_CHECK": "1", "TOKENIZERS_PARALLELISM": "false",
                         "OMP_NUM_THREADS": "1"}, Path(sys.executable).parent)
    return {"root": root, "plan": p, "summary": summary, "model_dir": model_dir, "args": args, "env": child}


def test_two_gloo_ranks_consume_exactly_the_scheduled_batches(two_ranks):
    """The plan's geometry under torchrun with gloo: every optimizer step trains on exactly the examples
    schedule.json names for it, all of one kind (recorded by a forward pre-hook on each rank)."""
    from transformers import AutoTokenizer

    from gream_pipeline.sft.llamafactory_glue import write_yaml

    root, p = two_ranks["root"], two_ranks["plan"]
    out = root / "recorded"
    out.mkdir()
    (root / "rec.py").write_text(RECORDER)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={p.world_size}",
                           f"--master_port={_free_port()}", str(root / "rec.py"),
                           str(write_yaml(two_ranks["args"](out), root / "rec.yaml")), str(out)],
                          env=two_ranks["env"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    tok = AutoTokenizer.from_pretrained(two_ranks["model_dir"])
    steps = json.loads(Path(two_ranks["summary"]["schedule"]).read_text())["steps"]
    by_step: dict[int, list[tuple[str, int]]] = {}
    for rank in range(p.world_size):
        seen = json.loads((out / f"seen_rank{rank}.json").read_text())
        assert Counter(len(rows) for _, rows in seen) == {p.per_device_batch: len(steps) * p.grad_accum}
        for step, rows in seen:
            for ids in rows:
                text = tok.decode(ids, skip_special_tokens=False)
                kind = "reason" if "<think>" in text else "align"
                by_step.setdefault(step, []).append(
                    (kind, int(re.search(r"(?:History of|Reason about) user (\d+)", text).group(1))))
    assert sorted(by_step) == [s["step"] for s in steps]  # one optimizer step per scheduled batch
    for s in steps:
        got = by_step[s["step"]]
        assert {kind for kind, _ in got} == {s["kind"]}, s["step"]  # never straddles align/reason blocks
        assert sorted(k for _, k in got) == sorted(s["examples"]), s["step"]


def test_gream_train_starts_lf_torchrun_with_the_planned_processes(two_ranks):
    """The stage's own launch: ``train`` with the plan's environment makes ``llamafactory-cli train`` start torchrun
    with 2 ranks (found on PATH), and LF runs exactly the scheduled number of optimizer steps."""
    from gream_pipeline.sft.llamafactory_glue import write_yaml
    from gream_pipeline.sft.stage import train

    root = two_ranks["root"]
    out = root / "via_cli"
    train(write_yaml(two_ranks["args"](out), root / "cli.yaml"), root / "cli.log", None, env=two_ranks["env"])
    log = (root / "cli.log").read_text()
    assert "Initializing 2 distributed tasks" in log, log[-3000:]
    rows = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert rows[-1]["total_steps"] == two_ranks["summary"]["num_steps"]


# ------------------------------------------------------------------------------------- DeepSpeed ZeRO-3 (paper)
REPO = Path(__file__).resolve().parents[1]
ZERO3 = REPO / "recipes" / "deepspeed" / "zero3.json"


def _paper_sft_args(tmp: Path) -> tuple[dict, object]:
    """The LLaMA-Factory arguments the sft stage builds for the paper recipe (Qwen3-4B path not opened)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gream_pipeline.cli import RECIPES, register_resolvers
    from gream_pipeline.sft.stage import lf_args

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["stage=sft", "experiment=paper_instruments",
                                                       "model.path=/models/Qwen3-4B-Instruct-2507"])
    return lf_args(cfg, Path(str(cfg.model.path)), tmp / "dataset", tmp / "model", 10), cfg


def test_paper_recipe_carries_a_zero3_config(tmp_path):
    """The JSON's structure: ZeRO-3, batch sizes left to the HF integration ("auto": filled from the LF arguments,
    so DeepSpeed's train_batch_size is per-device × accumulation × ranks = the emitted batch), LF's own optimizer
    and scheduler (none in the JSON), bf16 from the arguments, a full 16-bit model gathered at save."""
    ds = json.loads(ZERO3.read_text())
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                "gradient_clipping"):
        assert ds[key] == "auto", key
    assert ds["bf16"]["enabled"] == "auto" and "optimizer" not in ds and "scheduler" not in ds
    assert "offload_optimizer" not in zero and "offload_param" not in zero  # 8×80 GB holds the shards
    args, cfg = _paper_sft_args(tmp_path)
    assert Path(args["deepspeed"]) == ZERO3 and args["bf16"] is True and args["use_cpu"] is False
    assert (args["per_device_train_batch_size"], args["gradient_accumulation_steps"], cfg.sft.world_size) == (4, 8, 8)


DS_SCRIPT = textwrap.dedent('''
    import json, sys
    from llamafactory.hparams import get_train_args
    args = json.load(open(sys.argv[1]))
    model_args, data_args, training_args, finetuning_args, _ = get_train_args(args)
    ds = training_args.hf_deepspeed_config
    print("GREAM-DS " + json.dumps({"zero3": ds.is_zero3(), "train_batch_size": ds.config["train_batch_size"],
                                   "micro": ds.config["train_micro_batch_size_per_gpu"],
                                   "accum": ds.config["gradient_accumulation_steps"],
                                   "parallel_mode": str(training_args.parallel_mode)}))
''')


def test_paper_zero3_passes_llamafactory_parser_where_deepspeed_is_installed(tmp_path):
    """LLaMA-Factory's parser (``get_train_args``, which builds transformers' DeepSpeed config) accepts the paper
    recipe's arguments with the ZeRO-3 file, in one torchrun rank (LF demands torchrun for DeepSpeed) with the
    launch plan's geometry for this host; DeepSpeed's resolved train_batch_size is the emitted global batch."""
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not importable in this environment (the CPU default env has no DeepSpeed; "
                    "run in the GPU env, or with a deepspeed install on PYTHONPATH)")
    from gream_pipeline.sft.launch import count_devices

    args, cfg = _paper_sft_args(tmp_path)
    sft = cfg.sft
    devices = count_devices()
    # one rank here: the emitted global batch (4 × 8 × 8 = 256) re-split for one process, as the launch plan does
    global_batch = int(sft.per_device_batch) * int(sft.grad_accum) * int(sft.world_size)
    per_device, accum = split_batch(global_batch, 1, int(sft.per_device_batch))
    args.update(per_device_train_batch_size=per_device, gradient_accumulation_steps=accum)
    if not devices:
        args.update(use_cpu=True)  # DeepSpeed's CPU accelerator; the GPU env keeps use_cpu false
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "ds.py").write_text(DS_SCRIPT)
    env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
                           f"--master_port={_free_port()}", str(tmp_path / "ds.py"), str(tmp_path / "args.json")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("GREAM-DS ", 1)[1].splitlines()[0])
    assert got["zero3"] is True and got["parallel_mode"] == "ParallelMode.DISTRIBUTED"
    assert (got["micro"], got["accum"], got["train_batch_size"]) == (4, 64, global_batch)
