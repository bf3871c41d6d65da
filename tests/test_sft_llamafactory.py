"""LLaMA-Factory glue: the batches LF's own trainer feeds the model follow the curriculum schedule exactly;
a real tiny SFT writes checkpoints and losses; LF's parser validates a GPU config on a CPU host."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from gream_pipeline.sft.curriculum import schedule
from gream_pipeline.sft.llamafactory_glue import (
    DATA_FILE,
    LlamaFactoryArgsError,
    emit_dataset,
    llamafactory_args,
    make_batches,
    validate_args,
    write_yaml,
)
from gream_pipeline.sft.model_prep import prepare_model
from tests.fixtures.lf_batches import BatchRecorder
from tests.fixtures.tiny import id_tokens

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 128, "vocab_size": 400, "max_position_embeddings": 512}
ALIGN_SYS, REASON_SYS = "You are a recommender.", "Think step by step, then answer."
EPOCHS, GAMMA, SEED, PER_DEVICE, ACCUM = 3, 1.5, 7, 2, 2
BATCH = PER_DEVICE * ACCUM


def examples(n_align=40, n_reason=16):
    align = [{"task": "seqrec", "system": ALIGN_SYS, "prompt": f"History of user {k}: <a_{k}><b_{k % 7}>. Next?",
              "response": f"<a_{k}><b_1><c_2><d_3>"} for k in range(n_align)]
    reason = [{"system": REASON_SYS, "conversations": [
        {"from": "human", "value": f"Reason about user {k}: <a_{k}><b_2>."},
        {"from": "gpt", "value": f"<think> Step 1 evidence for {k}. </think> <answer><a_{k}><b_1><c_2><d_3></answer>"}]}
        for k in range(n_reason)]
    return align, reason


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Emit 40 alignment + 16 reasoning examples, build a tiny scratch model, run LF's real ``run_exp`` SFT and
    record every micro-batch the trainer feeds the model (forward pre-hook) with the global step it belongs to."""
    from llamafactory.train.tuner import run_exp

    root = tmp_path_factory.mktemp("lf")
    align, reason = examples()
    summary = emit_dataset(root / "data", align, reason, batch_size=BATCH, epochs=EPOCHS, gamma=GAMMA, seed=SEED)
    corpus = [e["system"] + " " + e["prompt"] + " " + e["response"] for e in align]
    corpus += [e["system"] + " " + c["value"] for e in reason for c in e["conversations"]]
    model_dir = prepare_model("scratch", root / "model", id_tokens(), corpus, arch=TINY, seed=0)
    args = llamafactory_args(model_dir, root / "data", root / "out", per_device_batch=PER_DEVICE, grad_accum=ACCUM,
                             lr=1e-3, cutoff_len=256, save_steps=summary["steps_per_epoch"],
                             extra={"disable_gradient_checkpointing": True})
    validate_args(args, batch_size=BATCH, require_files=True)
    recorder = BatchRecorder()
    run_exp(dict(args), callbacks=[recorder])
    seen = recorder.seen
    return {"root": root, "summary": summary, "seen": seen, "args": args, "align": align, "reason": reason,
            "model_dir": model_dir}


def test_lf_batches_follow_the_curriculum(trained):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(trained["model_dir"])
    summary, seen = trained["summary"], trained["seen"]
    plan = [b for epoch in schedule(summary["n_align_batches"], summary["n_reason_batches"], EPOCHS, GAMMA, SEED)
            for b in epoch]
    steps = json.loads(Path(summary["schedule"]).read_text())["steps"]
    assert summary["n_align_batches"] == 10 and summary["n_reason_batches"] == 4 and len(plan) == 42
    assert [(s["kind"], s["batch"]) for s in steps] == plan

    by_step: dict[int, list[tuple[list[int], list[int]]]] = {}
    for step, rows, labels in seen:
        by_step.setdefault(step, []).extend(zip(rows, labels))
    assert sorted(by_step) == list(range(1, len(plan) + 1))  # one optimizer step per scheduled batch
    assert Counter(len(v) for v in by_step.values()) == {BATCH: len(plan)}
    assert len(seen) == len(plan) * ACCUM

    for step, (kind, _) in enumerate(plan, start=1):
        got_kind, got_ids = set(), []
        for ids, labels in by_step[step]:
            text = tok.decode(ids, skip_special_tokens=False)
            is_reason = "<think>" in text
            got_kind.add("reason" if is_reason else "align")
            k = int(re.search(r"(?:History of|Reason about) user (\d+)", text).group(1))
            got_ids.append(k)
            ex = (trained["reason"] if is_reason else trained["align"])[k]
            system, prompt, response = (
                (ex["system"], ex["conversations"][0]["value"], ex["conversations"][1]["value"]) if is_reason
                else (ex["system"], ex["prompt"], ex["response"]))
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
            # the trained prompt tokens are exactly the inference-time chat-template prompt (no persona, ChatML)
            prompt_ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
            n_prompt = next(i for i, lab in enumerate(labels) if lab != -100)
            assert ids[:n_prompt] == list(prompt_ids)
            # loss only on the response (+ <|im_end|> and the newline of the template)
            assert tok.decode([t for t in labels if t != -100]) == response + "<|im_end|>\n"
        assert got_kind == {kind}, step
        assert sorted(got_ids) == sorted(steps[step - 1]["examples"]), step


def test_real_sft_writes_checkpoints_and_losses(trained):
    out, summary = trained["root"] / "out", trained["summary"]
    per_epoch = summary["steps_per_epoch"]
    assert {p.name for p in out.glob("checkpoint-*")} == {f"checkpoint-{per_epoch * e}" for e in (1, 2, 3)}
    assert (out / "model.safetensors").is_file() and (out / "training_loss.png").is_file()
    from transformers import AutoTokenizer

    from gream_pipeline.sft.model_prep import CHAT_TEMPLATE

    tok = AutoTokenizer.from_pretrained(out)  # LF keeps our ChatML template, eos/pad and the ID tokens
    assert tok.chat_template == CHAT_TEMPLATE and (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert tok.tokenize("<a_1><b_2>") == ["<a_1>", "<b_2>"]
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == summary["num_steps"] and all(x > 0 for x in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # it learns something


def test_emitted_file_and_padding(tmp_path):
    """10 alignment + 3 reasoning examples, batch 4: partial batches are padded with same-type examples, batch
    boundaries are multiples of 4, every example appears at least once per epoch."""
    align, reason = examples(10, 3)
    s = emit_dataset(tmp_path, align, reason, batch_size=4, epochs=2, gamma=1.5, seed=0)
    assert (s["n_align_batches"], s["n_reason_batches"], s["padded_per_epoch"]) == (3, 1, {"align": 2, "reason": 1})
    rows = [json.loads(line) for line in (tmp_path / DATA_FILE).read_text().splitlines()]
    steps = json.loads((tmp_path / "schedule.json").read_text())["steps"]
    assert len(rows) == 4 * len(steps) == 4 * 2 * 4 == s["num_rows"]
    for k, st in enumerate(steps):
        block = rows[4 * k: 4 * k + 4]
        assert {r["kind"] for r in block} == {st["kind"]}
        source = align if st["kind"] == "align" else reason
        assert [r["conversations"][0]["value"] for r in block] == [
            source[i].get("prompt") or source[i]["conversations"][0]["value"] for i in st["examples"]]
    for epoch in (1, 2):
        for kind, n in (("align", 10), ("reason", 3)):
            used = {i for st in steps if st["epoch"] == epoch and st["kind"] == kind for i in st["examples"]}
            assert used == set(range(n))
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["gream_sft"]["formatting"] == "sharegpt" and info["gream_sft"]["columns"]["system"] == "system"
    assert (tmp_path / "curriculum.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="empty"):
        emit_dataset(tmp_path, [{"system": "", "prompt": "q", "response": " "}], [], 4, 1, 1.5, 0)


def _padded_tokens(batches, lengths):
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_cut_padding_and_keep_every_example():
    import random

    rng_len = random.Random(3)
    lengths = [rng_len.choice([20, 40, 400]) + rng_len.randrange(10) for _ in range(203)]
    plain = make_batches(203, 8, random.Random(0))
    rng = random.Random(0)
    grouped, again = make_batches(203, 8, rng, lengths, 5), make_batches(203, 8, rng, lengths, 5)
    for batches in (plain, grouped, again):
        assert all(len(b) == 8 for b in batches) and len(batches) == 26
        assert {i for b in batches for i in b} == set(range(203))
    # mixed lengths: random batches almost always hold a long example, grouped ones mostly do not
    assert _padded_tokens(grouped, lengths) < 0.6 * _padded_tokens(plain, lengths)
    assert sorted(map(sorted, grouped)) != sorted(map(sorted, again))  # membership is re-drawn every epoch


def test_time_budget_stops_lf_and_saves_the_model(trained):
    """`python -m gream_pipeline.sft.budget` runs LF's run_exp with the budget callback: a zero budget stops after
    the first optimizer step, and LF still saves a loadable model."""
    import subprocess
    import sys

    args = {**trained["args"], "output_dir": str(trained["root"] / "budget_out"), "save_strategy": "no"}
    args.pop("save_steps", None)
    path = write_yaml(args, trained["root"] / "budget.yaml")
    proc = subprocess.run([sys.executable, "-m", "gream_pipeline.sft.budget", str(path), "0"], capture_output=True,
                          text=True, env={**__import__("os").environ, "DISABLE_VERSION_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((trained["root"] / "budget_out" / "budget.json").read_text())
    assert report["stopped_by_budget"] is True and report["stopped_at_step"] == report["global_step"] == 1
    assert report["max_steps"] == trained["summary"]["num_steps"]
    assert (trained["root"] / "budget_out" / "model.safetensors").is_file()
    bad = subprocess.run([sys.executable, "-m", "gream_pipeline.sft.budget", str(path)], capture_output=True, text=True)
    assert bad.returncode == 2


def gpu_args(tmp_path, **extra):
    """Paper setting: Qwen3-4B-Instruct-2507 full FT, lr 5e-5, 3 curriculum epochs in one pre-ordered file, bf16.
    The model path does not exist here: LF's parser never opens it."""
    return llamafactory_args("/models/Qwen3-4B-Instruct-2507", tmp_path / "data", tmp_path / "out",
                             per_device_batch=4, grad_accum=4, lr=5e-5, cutoff_len=2048, bf16=True,
                             warmup_ratio=0.03, extra={"flash_attn": "fa2", "save_only_model": True, **extra})


def test_validate_gpu_config_on_cpu(tmp_path):
    args = gpu_args(tmp_path)
    validate_args(args, batch_size=128, world_size=8)
    path = write_yaml(args, tmp_path / "sft_qwen3_4b.yaml")
    loaded = yaml.safe_load(path.read_text())
    assert loaded == args and loaded["disable_shuffling"] is True and loaded["num_train_epochs"] == 1.0
    assert loaded["template"] == "qwen3_nothink" and loaded["default_system"] == ""
    validate_args(loaded, batch_size=128, world_size=8)


def test_validate_rejects_bad_configs(tmp_path):
    with pytest.raises(LlamaFactoryArgsError, match="not used by the HfArgumentParser.*learning_rat"):
        validate_args(gpu_args(tmp_path, learning_rat=1e-5))
    with pytest.raises(LlamaFactoryArgsError, match="LLaMA-Factory rejected.*[Tt]emplate"):
        validate_args(gpu_args(tmp_path, template="no_such_template"))
    with pytest.raises(LlamaFactoryArgsError, match="val_size.*packing"):
        validate_args(gpu_args(tmp_path, val_size=0.1, packing=True))
    with pytest.raises(LlamaFactoryArgsError, match="disable_shuffling"):
        validate_args(gpu_args(tmp_path, disable_shuffling=False))
    with pytest.raises(LlamaFactoryArgsError, match="mask_history.*every turn but the last"):
        validate_args(gpu_args(tmp_path, mask_history=True))  # would train sequence rows on their last turn only
    with pytest.raises(LlamaFactoryArgsError, match="num_train_epochs"):
        validate_args(gpu_args(tmp_path, num_train_epochs=3))
    with pytest.raises(LlamaFactoryArgsError, match="!= the emitted batch size 64"):
        validate_args(gpu_args(tmp_path), batch_size=64)
    with pytest.raises(LlamaFactoryArgsError, match="not a local HF model directory"):
        validate_args(gpu_args(tmp_path), require_files=True)


@pytest.mark.parametrize("budget, world_size", [(0, 1), (-5, 1), (30, 8)])
def test_bad_time_budget_is_rejected_before_any_work(tmp_path, budget, world_size):
    from omegaconf import OmegaConf

    from gream_pipeline.errors import GreamError
    from gream_pipeline.sft.stage import SFT, run_sft
    from gream_pipeline.stages import StageContext

    cfg = OmegaConf.create({"run_dir": str(tmp_path / "run"),
                            "sft": {"launch": "run", "time_budget_min": budget, "world_size": world_size}})
    with pytest.raises(GreamError, match="sft.time_budget_min"):
        run_sft(StageContext(cfg, SFT, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
