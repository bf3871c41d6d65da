"""GPU smoke test (`make gpu-smoke`, docs/GPU.md): does gream's GPU code path run on this host?

Tier 1 — needs only CUDA torch + a small wheel bundle (`make gpu-bundle`); builds its own toy catalogue, no dataset:
  1. a tiny Qwen3 made from a config, with a BPE tokenizer and the semantic-ID tokens added by gream's model
     preparation (single, non-special tokens);
  2. LLaMA-Factory 0.9.5 SFT (`run_exp`, the stage's arguments) in bf16 on the device, on gream's curriculum file;
     every micro-batch the trainer feeds the model is recorded: each optimizer step must hold exactly the examples
     of that step in schedule.json, of the scheduled kind (alignment / reasoning), and the parameters must sit on
     the device;
  3. the HF engine's trie beam on the device: with num_beams >= #IDs it is exhaustive and must equal
     `beam.score_all_ids` (teacher-forced log P(ID | prompt)) in order and value; with 8 beams every returned
     score must equal the exhaustive score of its ID; bf16 scores stay close to fp32.
Tier 2 — runs where verl + Ray + vLLM or SGLang are installed (`make install-gpu ENGINE=vllm|sglang`), else skips:
  4. 2 steps of verl's `main_ppo` with `algorithm.adv_estimator=srpo` on the SFT model (gream's job composition and
     hand-over: rl/verl_job.py), its HF model collected;
  5. a real vLLM / SGLang server on that model; the OpenAI engine's beam through it against the HF engine's.

  python bench/gpu_smoke.py                      # cuda, both tiers (tier 2 skips with a message where it cannot run)
  python bench/gpu_smoke.py --device cpu         # tier 1 on CPU (bf16 autocast; what CI can run)
  python bench/gpu_smoke.py --check-env vllm     # import check of an installed environment (make install-gpu)
Writes <out>/smoke.json (default runs/gpu-smoke/); exit 0 = passed (or tier 2 skipped), 1 = a check failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")  # LLaMA-Factory: the bundle's transformers is the checked one

# head_dim 64: the attention kernels of vLLM / SGLang (tier 2) take 64, not every small size
TINY_ARCH = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
             "intermediate_size": 256, "vocab_size": 400, "max_position_embeddings": 512}
CODES = (4, 4, 3, 3)
SYSTEM = "You are a recommender."
REASON_SYSTEM = "Think step by step, then answer."
BATCH, PER_DEVICE, ACCUM, EPOCHS, GAMMA, SEED = 4, 2, 2, 2, 1.5, 7

ENV_MODULES = {  # --check-env: what each locked environment must import
    "vllm": ["torch", "transformers", "llamafactory", "verl", "ray", "vllm", "gream_pipeline", "reward_fns"],
    "sglang": ["torch", "transformers", "verl", "ray", "sglang", "gream_pipeline", "reward_fns"],
    "sft": ["torch", "transformers", "llamafactory", "trl", "verl", "gream_pipeline"],
    "vllm-cpu": ["torch", "transformers", "vllm", "gream_pipeline"],
}


class SmokeFailure(AssertionError):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SmokeFailure(what)


def log(msg: str) -> None:
    print(f"[gpu-smoke {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def versions(names) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = None
    return out


def check_env(name: str) -> int:
    mods = ENV_MODULES.get(name)
    if mods is None:
        print(f"unknown environment {name!r} ({', '.join(ENV_MODULES)})")
        return 2
    bad = []
    for m in mods:
        try:
            importlib.import_module(m)
        except Exception as e:  # noqa: BLE001 - report every broken import
            bad.append(f"{m}: {type(e).__name__}: {e}")
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "gpus": torch.cuda.device_count(),
            **versions(["transformers", "llamafactory", "verl", "ray", "vllm", "vllm-cpu", "sglang", "trl"])}
    print(json.dumps({k: v for k, v in info.items() if v is not None}))
    if bad:
        print("imports failed:\n  " + "\n  ".join(bad))
        return 1
    if name != "vllm-cpu" and not torch.cuda.is_available():
        print("note: no CUDA device visible here; the environment imports, run `make gpu-smoke` on a GPU node")
    print(f"environment {name}: OK")
    return 0


# ------------------------------------------------------------------------------------------------------- toy data
def toy_world(n_items: int = 40, n_users: int = 24):
    """Catalogue (index with conflict slots), users' histories, SFT rows tagged with the user number."""
    from gream_pipeline.semantic_ids import vocabulary
    from tests.fixtures.tiny import fake_examples, fake_index

    index = fake_index(n_items, codes=CODES, seed=SEED)
    examples = fake_examples(index, n_users, history=4, seed=SEED)
    ids = {k: "".join(v) for k, v in index.items()}
    slot = 1 + max((int(re.search(r"_(\d+)>", v[-1]).group(1)) for v in index.values() if len(v) > len(CODES)),
                   default=-1)
    tokens = vocabulary(CODES, max(slot, 1))
    align, reason = [], []
    for k, ex in enumerate(examples):
        hist = " ".join(ids[str(i)] for i in ex["history"])
        align.append({"task": "seqrec", "system": SYSTEM, "prompt": f"History of user {k}: {hist}. Next item?",
                      "response": ids[str(ex["target"])]})
        if k % 3 == 0:
            reason.append({"system": REASON_SYSTEM, "conversations": [
                {"from": "human", "value": f"Reason about user {k}: {hist}."},
                {"from": "gpt", "value": f"<think> Step 1 evidence for {k}. </think> "
                                         f"<answer>{ids[str(ex['target'])]}</answer>"}]})
    return index, examples, tokens, align, reason


# --------------------------------------------------------------------------------------------------------- tier 1
def sft(out: Path, device: str, index, tokens, align, reason) -> dict:
    from transformers import AutoTokenizer, TrainerCallback

    from gream_pipeline.sft import llamafactory_glue as glue
    from gream_pipeline.sft.curriculum import schedule
    from gream_pipeline.sft.model_prep import prepare_model

    if importlib.util.find_spec("matplotlib") is None:  # the curriculum plot only; not what is tested here
        glue.plot_schedule = lambda *a, **k: None
    t0 = time.perf_counter()
    corpus = [e["system"] + " " + e["prompt"] + " " + e["response"] for e in align]
    corpus += [e["system"] + " " + c["value"] for e in reason for c in e["conversations"]]
    model_dir = prepare_model("scratch", out / "model", tokens, corpus, arch=TINY_ARCH, seed=0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    sample = "".join(next(iter(index.values())))
    check(tok.tokenize(sample) == list(next(iter(index.values()))), f"ID tokens are not single tokens: {sample}")
    summary = glue.emit_dataset(out / "data", align, reason, batch_size=BATCH, epochs=EPOCHS, gamma=GAMMA, seed=SEED)
    args = glue.llamafactory_args(model_dir, out / "data", out / "sft", per_device_batch=PER_DEVICE,
                                  grad_accum=ACCUM, lr=3e-3, cutoff_len=256, bf16=True, use_cpu=device == "cpu",
                                  gradient_checkpointing=False,
                                  extra={"plot_loss": importlib.util.find_spec("matplotlib") is not None,
                                         "save_only_model": True})
    glue.validate_args(args, batch_size=BATCH, require_files=True)
    seen: list[tuple[int, list[list[int]]]] = []
    where: dict = {}

    class Recorder(TrainerCallback):
        step = 0

        def on_step_begin(self, targs, state, control, **kw):
            Recorder.step = state.global_step + 1

        def on_train_begin(self, targs, state, control, model=None, **kw):
            def head_hook(module, a, output):  # bf16 autocast: the LM head computes in bfloat16
                where.setdefault("lm_head_compute_dtype", str(output.dtype))

            def hook(module, a, k):
                if "param_device" not in where:
                    p = next(module.parameters())
                    where.update(param_device=str(p.device), param_dtype=str(p.dtype),
                                 input_device=str(k["input_ids"].device))
                mask = k["attention_mask"].bool()
                seen.append((Recorder.step, [ids[m].tolist() for ids, m in zip(k["input_ids"], mask)]))
            model.register_forward_pre_hook(hook, with_kwargs=True)
            model.get_output_embeddings().register_forward_hook(head_hook)

    from llamafactory.train.tuner import run_exp

    run_exp(dict(args), callbacks=[Recorder()])
    train_s = time.perf_counter() - t0
    # the curriculum: each optimizer step = the scheduled batch, of the scheduled kind
    steps = json.loads(Path(summary["schedule"]).read_text())["steps"]
    plan = [b for ep in schedule(summary["n_align_batches"], summary["n_reason_batches"], EPOCHS, GAMMA, SEED)
            for b in ep]
    check([(s["kind"], s["batch"]) for s in steps] == plan, "schedule.json differs from curriculum.schedule")
    by_step: dict[int, list[list[int]]] = {}
    for step, rows in seen:
        by_step.setdefault(step, []).extend(rows)
    check(sorted(by_step) == list(range(1, len(steps) + 1)), f"optimizer steps {sorted(by_step)[:5]}… != schedule")
    for st in steps:
        rows = by_step[st["step"]]
        check(len(rows) == BATCH, f"step {st['step']}: {len(rows)} rows, not {BATCH}")
        texts = [tok.decode(r, skip_special_tokens=False) for r in rows]
        kinds = {"reason" if "<think>" in t else "align" for t in texts}
        check(kinds == {st["kind"]}, f"step {st['step']}: kinds {kinds} != scheduled {st['kind']}")
        users = sorted(int(re.search(r"(?:History of|Reason about) user (\d+)", t).group(1)) for t in texts)
        source = align if st["kind"] == "align" else reason
        want = sorted(int(re.search(r"user (\d+)", source[i].get("prompt") or
                                    source[i]["conversations"][0]["value"]).group(1)) for i in st["examples"])
        check(users == want, f"step {st['step']}: users {users} != scheduled {want}")
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    check(where.get("param_device", "").split(":")[0] == dev_type, f"model trained on {where}, not {device}")
    check(where.get("lm_head_compute_dtype") == "torch.bfloat16", f"not trained in bf16: {where}")
    sft_dir = out / "sft"
    saved = AutoTokenizer.from_pretrained(sft_dir)
    check(saved.tokenize(sample) == list(next(iter(index.values()))), "saved tokenizer lost the ID tokens")
    losses = [json.loads(x)["loss"] for x in (sft_dir / "trainer_log.jsonl").read_text().splitlines()
              if "loss" in json.loads(x)]
    check(len(losses) == len(steps) and losses[-1] < losses[0], f"losses {losses[:3]}…{losses[-3:]}")
    return {"model_dir": str(sft_dir), "steps": len(steps), "align_batches": summary["n_align_batches"],
            "reason_batches": summary["n_reason_batches"], "order": "".join("R" if s["kind"] == "reason" else "a"
                                                                          for s in steps),
            "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4), "where": where,
            "seconds": round(train_s, 1)}


def engine_config(**kw):
    from gream_pipeline.eval.config import EngineConfig

    base = dict(kind="hf", dtype="float32", device="cpu", num_threads=None, tokenizer_dir=None,
                base_url="http://127.0.0.1:8000/v1", api_key="EMPTY", served_model=None, flavor="vllm",
                max_logprobs=20, concurrency=8, timeout_s=600.0, vllm_kwargs={})
    return EngineConfig(**{**base, **kw})


def beam_vs_exhaustive(model_dir: str, device: str, index, examples, n_users: int = 4) -> dict:
    from transformers import AutoTokenizer

    from gream_pipeline.eval.beam import score_all_ids
    from gream_pipeline.eval.engines import make_engine
    from gream_pipeline.eval.trie import IDCatalog, TokenTrie, token_ids_for

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    cat = IDCatalog.from_index(index)
    trie = TokenTrie.build(cat, token_ids_for(tok, cat))
    id_toks = [[tok.convert_tokens_to_ids(t) for t in toks] for toks in cat.tokens]
    prompts = [tok.apply_chat_template(
        [{"role": "system", "content": SYSTEM},
         {"role": "user", "content": "History of user {}: {}. Next item?".format(
             k, " ".join("".join(index[str(i)]) for i in ex["history"]))}],
        add_generation_prompt=True, tokenize=True, return_dict=False) for k, ex in enumerate(examples[:n_users])]
    n = len(cat.ids)
    eng = make_engine(model_dir, trie, tok, engine_config(device=device, dtype="float32"))
    check(str(next(eng.model.parameters()).device).split(":")[0] == device.split(":")[0], "HF engine off device")
    full = eng.beam(prompts, num_beams=n, top_k=n)
    small = eng.beam(prompts, num_beams=8, top_k=5)
    worst, worst_small = 0.0, 0.0
    exact_lists = []
    for p, f, s in zip(prompts, full, small):
        ref = score_all_ids(eng.model, p, id_toks, pad_id=tok.pad_token_id)
        order = sorted(range(n), key=lambda i: -ref[i])
        check([i for i, _ in f] == order, "exhaustive beam order != score_all_ids order")
        worst = max([worst] + [abs(sc - ref[i]) for i, sc in f])
        worst_small = max([worst_small] + [abs(sc - ref[i]) for i, sc in s])
        exact_lists.append(ref)
    check(worst < 2e-3, f"exhaustive beam scores differ from score_all_ids by {worst:.2e}")
    check(worst_small < 2e-3, f"8-beam scores differ from exhaustive scores by {worst_small:.2e}")
    eng.close()
    eng16 = make_engine(model_dir, trie, tok, engine_config(device=device, dtype="bfloat16"))
    b16 = eng16.beam(prompts, num_beams=8, top_k=5)
    worst16 = max(abs(sc - ref[i]) for hyps, ref in zip(b16, exact_lists) for i, sc in hyps)
    check(worst16 < 0.25, f"bf16 beam scores differ from fp32 by {worst16:.3f}")
    eng16.close()
    return {"ids": n, "users": len(prompts), "max_err_exhaustive": worst, "max_err_8_beams": worst_small,
            "max_err_bf16": round(worst16, 4), "seconds": round(time.perf_counter() - t0, 1),
            "prompts": prompts, "top1": [h[0][0] for h in full]}


# --------------------------------------------------------------------------------------------------------- tier 2
def tier2_missing(engine: str, device: str) -> str | None:
    if device == "cpu":
        return "--device cpu (verl's trainer and the rollout engines need CUDA)"
    need = ["verl", "ray", engine]
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{', '.join(missing)} not installed (tier 2 runs in `make install-gpu ENGINE={engine}` "
                "environments)")
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verl_two_steps(out: Path, model_dir: str, index, examples, engine: str, gpus: int) -> dict:
    from gream_pipeline.rl.prompts_data import rl_prompts, write_verl_parquet
    from gream_pipeline.rl.verl_job import job_overrides, run_job

    t0 = time.perf_counter()
    recs = rl_prompts(examples, index, "direct")
    write_verl_parquet(recs, out / "rl_data" / "train.parquet")
    write_verl_parquet(recs[:8], out / "rl_data" / "val.parquet")
    knobs = {
        "algorithm.adv_estimator": "srpo", "trainer.total_training_steps": 2,
        # a toy policy may score every rollout of a prompt alike: with variance filtering on, verl would keep
        # sampling for groups that never come; the estimator and the rest of the recipe are unchanged
        "algorithm.filter_groups.enable": "false", "trainer.save_freq": 2,
        "trainer.test_freq": -1, "trainer.val_before_train": "false", "trainer.n_gpus_per_node": gpus,
        "trainer.nnodes": 1, "data.train_batch_size": 8, "data.max_prompt_length": 256,
        "data.max_response_length": 16, "actor_rollout_ref.actor.ppo_mini_batch_size": 8,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 4, "actor_rollout_ref.rollout.name": engine,
        "actor_rollout_ref.rollout.n": 4, "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
        "actor_rollout_ref.rollout.gpu_memory_utilization": 0.3,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 4,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": 4,
        "actor_rollout_ref.model.use_remove_padding": "false",  # no flash-attn in the locks
    }
    overrides = job_overrides([out / "rl_data" / "train.parquet"], [out / "rl_data" / "val.parquet"],
                              Path(model_dir), out / "rl", verl=knobs, experiment_name="gpu-smoke")
    res = run_job(overrides, out / "rl", out / "rl_verl.log")
    steps = res.get("metrics", {}).get("logged_steps")
    check(res.get("model_step") == 2, f"verl saved step {res.get('model_step')}, not 2")
    return {"model_dir": str(out / "rl" / "model"), "logged_steps": steps,
            "last_metrics": {k: v for k, v in res.get("metrics", {}).get("last", {}).items()
                             if k.startswith(("critic/score", "actor/pg_loss", "critic/advantages"))},
            "seconds": round(time.perf_counter() - t0, 1)}


def server_vs_hf(out: Path, model_dir: str, index, prompts, engine: str, dtype: str = "float32") -> dict:
    import urllib.request

    from transformers import AutoTokenizer

    from gream_pipeline.eval.engines import make_engine
    from gream_pipeline.eval.trie import IDCatalog, TokenTrie, token_ids_for

    t0 = time.perf_counter()
    port = _free_port()
    if engine == "vllm":
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir, "--port", str(port),
               "--host", "127.0.0.1", "--max-logprobs", "64", "--gpu-memory-utilization", "0.3",
               "--served-model-name", "smoke", "--dtype", dtype]
    else:
        cmd = [sys.executable, "-m", "sglang.launch_server", "--model-path", model_dir, "--port", str(port),
               "--host", "127.0.0.1", "--enable-custom-logit-processor", "--mem-fraction-static", "0.3",
               "--served-model-name", "smoke", "--dtype", dtype]
    log_f = open(out / f"{engine}_server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log_f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=5).read()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SmokeFailure(f"{engine} server did not start; see {out / (engine + '_server.log')}")
                time.sleep(2)
        tok = AutoTokenizer.from_pretrained(model_dir)
        cat = IDCatalog.from_index(index)
        trie = TokenTrie.build(cat, token_ids_for(tok, cat))
        srv = make_engine(model_dir, trie, tok, engine_config(kind="openai", base_url=url, flavor=engine,
                                                                served_model="smoke", max_logprobs=64))
        got = srv.beam(prompts, num_beams=8, top_k=5)
        stats = srv.stats.as_dict()
        srv.close()
        hf = make_engine(model_dir, trie, tok, engine_config(device="cuda", dtype=dtype))
        ref = hf.beam(prompts, num_beams=8, top_k=5)
        hf.close()
        err = max(abs(a - dict(r)[i]) for g, r in zip(got, ref) for i, a in g if i in dict(r))
        same = sum([i for i, _ in g] == [i for i, _ in r] for g, r in zip(got, ref))
        tol = 5e-3 if dtype == "float32" else 0.1  # different kernels; bf16 may also swap near-ties
        check(err < tol and (same == len(ref) or dtype != "float32"),
              f"{engine} server vs HF ({dtype}): max score diff {err:.2e}, {same}/{len(ref)} identical top-5 lists")
        return {"engine": engine, "max_score_diff": err, "identical_lists": f"{same}/{len(ref)}", "stats": stats,
                "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log_f.close()


# ----------------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (tier 1 only)")
    ap.add_argument("--engine", default=None, help="tier 2 engine: vllm | sglang (default: whichever is installed)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "gpu-smoke"))
    ap.add_argument("--tier", type=int, choices=(1, 2), default=None, help="run only this tier (2 needs tier 1's SFT)")
    ap.add_argument("--require-tier2", action="store_true", help="a skipped tier 2 is a failure")
    ap.add_argument("--server-dtype", default="float32", help="tier 2 server and HF dtype (float32: exact compare)")
    ap.add_argument("--check-env", metavar="ENV", help="only import-check an installed environment")
    args = ap.parse_args(argv)
    if args.check_env:
        return check_env(args.check_env)

    device_env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if args.device.startswith("cuda") and device_env is None:
        # one GPU for tier 1: transformers' Trainer would wrap the model in DataParallel on several, and the global
        # batch (hence the curriculum check) would change; tier 2's subprocesses get the original visibility back
        idx = args.device.split(":")[1] if ":" in args.device else "0"
        os.environ["CUDA_VISIBLE_DEVICES"] = idx
        args.device = "cuda:0"
    import torch

    out = Path(args.out)
    if out.exists():
        if any(out.iterdir()) and not (out / "smoke.json").exists() and not (out / "model").exists():
            print(f"--out {out} exists and is not a smoke output: refusing to replace it")
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    report: dict = {"host": {"python": platform.python_version(), "torch": torch.__version__,
                             "cuda": torch.version.cuda, "device": args.device,
                             "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                             **versions(["transformers", "llamafactory", "trl", "peft", "accelerate", "datasets",
                                         "verl", "ray", "vllm", "sglang"])}}
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for tier 1 on this host")
        return 1
    t0 = time.perf_counter()
    status = 0
    try:
        index, examples, tokens, align, reason = toy_world()
        report["catalogue"] = {"items": len(index), "ids": len({"".join(v) for v in index.values()}),
                               "conflict_slots": sum(len(v) > len(CODES) for v in index.values()),
                               "align_rows": len(align), "reason_rows": len(reason)}
        log(f"tier 1 on {args.device}: LLaMA-Factory SFT (bf16) of a tiny Qwen3 with {len(tokens)} ID tokens")
        report["sft"] = sft(out, args.device, index, tokens, align, reason)
        log(f"  SFT ok: {report['sft']['steps']} steps in curriculum order {report['sft']['order']}, loss "
            f"{report['sft']['first_loss']} → {report['sft']['last_loss']}, on {report['sft']['where']}")
        beam = beam_vs_exhaustive(report["sft"]["model_dir"], args.device, index, examples)
        prompts = beam.pop("prompts")
        report["beam"] = beam
        log(f"  HF trie beam ok: {beam['ids']} IDs × {beam['users']} users equal score_all_ids "
            f"(max |Δ| {beam['max_err_exhaustive']:.1e}; 8 beams {beam['max_err_8_beams']:.1e}; bf16 "
            f"{beam['max_err_bf16']})")
        report["tier1"] = {"passed": True, "seconds": round(time.perf_counter() - t0, 1)}
        log(f"TIER 1 PASSED in {report['tier1']['seconds']} s")
        if args.tier == 1:
            report["tier2"] = {"skipped": "--tier 1"}
        else:
            engines = [args.engine] if args.engine else ["vllm", "sglang"]
            reasons = {e: tier2_missing(e, args.device) for e in engines}
            engine = next((e for e in engines if reasons[e] is None), None)
            if engine is None:
                why = "; ".join(f"{e}: {r}" for e, r in reasons.items())
                report["tier2"] = {"skipped": why}
                log(f"TIER 2 SKIPPED: {why}")
                status = 1 if args.require_tier2 else 0
            else:
                if device_env is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = device_env
                t2 = time.perf_counter()
                gpus = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                                          capture_output=True, text=True).stdout.strip() or 1)
                log(f"tier 2: verl main_ppo, adv_estimator=srpo, 2 steps, {engine} rollouts on {gpus} GPU(s)")
                report["verl"] = verl_two_steps(out, report["sft"]["model_dir"], index, examples, engine, gpus)
                log(f"  verl ok: {report['verl']}")
                report["server"] = server_vs_hf(out, report["verl"]["model_dir"], index, prompts, engine,
                                                args.server_dtype)
                log(f"  {engine} server ok: {report['server']}")
                report["tier2"] = {"passed": True, "engine": engine, "seconds": round(time.perf_counter() - t2, 1)}
                log(f"TIER 2 PASSED in {report['tier2']['seconds']} s")
    except Exception as e:  # noqa: BLE001 - one report for every failure
        report["failed"] = f"{type(e).__name__}: {e}"
        report["traceback"] = traceback.format_exc()
        log(f"FAILED: {report['failed']}")
        traceback.print_exc()
        status = 1
    report["imported_distributions"] = imported_distributions()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "smoke.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"report: {out / 'smoke.json'} ({report['seconds']} s)")
    return status


def imported_distributions() -> list[str]:
    """Distributions this run imported (what a wheel bundle must provide beside torch)."""
    from importlib.metadata import packages_distributions

    top = {m.split(".")[0] for m in list(sys.modules)}
    dists = packages_distributions()
    return sorted({d for t in top for d in dists.get(t, [])})


if __name__ == "__main__":
    sys.exit(main())
