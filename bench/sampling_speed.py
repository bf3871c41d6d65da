"""Reasoning-mode sampling speed of the HF engine: ``model.generate(do_sample, top_p, stop_strings)`` (the former
path) vs the cached-prompt nucleus sampler (gream_pipeline/eval/sampling.py), on a trained run's model and its
reasoning prompts for the first test users, in one run, the two methods alternating batch by batch.

Both decode the thinking phase as evaluation does (n samples, temperature, top_p, a token budget, stop at
``<answer>``). Reported per method: seconds, generated tokens, tokens/s, the share of samples that reached the stop
string, and the speed ratio. The two draw different random streams, so texts differ; the stop share and mean length
should agree within sampling noise.

    OMP_NUM_THREADS=1 .venv/bin/python bench/sampling_speed.py runs/<run> [--users 8] [--batch 2] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gream_pipeline.artifacts import read_jsonl  # noqa: E402
from gream_pipeline.eval.beam import left_pad  # noqa: E402
from gream_pipeline.eval.prompts import PAPER_SYSTEM_PROMPT, default_reason_prompt, render  # noqa: E402
from gream_pipeline.semantic_ids import ANSWER_OPEN  # noqa: E402
from gream_pipeline.eval.sampling import StopText, sample  # noqa: E402
from gream_pipeline.eval.trie import IDCatalog  # noqa: E402


def generate_path(model, tok, prompts, n, temperature, top_p, budget, seed, end_ids, pad_id) -> list[list[int]]:
    """The former HFEngine.sample: transformers' generate with its top-p warper and stop strings."""
    import torch

    ids, mask = left_pad(prompts, pad_id)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                             top_p=top_p, top_k=0, num_return_sequences=n, max_new_tokens=budget,
                             pad_token_id=pad_id, eos_token_id=sorted(end_ids), stop_strings=[ANSWER_OPEN],
                             tokenizer=tok)
    gen = out[:, ids.shape[1]:].tolist()
    return [g[:next((i for i, t in enumerate(g) if t in end_ids), len(g))] for g in gen]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder with sft/model, index/index.json, data/test.jsonl")
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2, help="users per call (eval.batch_size for reasoning)")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--budget", type=int, default=384)
    ap.add_argument("--dtype", default="float32", help="model dtype (float32 | bfloat16)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = args.run / "sft" / "model"
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, args.dtype)).eval()
    catalog = IDCatalog.from_index(json.loads((args.run / "index" / "index.json").read_text()))
    examples = read_jsonl(args.run / "data" / "test.jsonl")[:args.users]
    prompts = [render(tok, default_reason_prompt([catalog.item_to_id[str(i)] for i in ex["history"]]),
                      PAPER_SYSTEM_PROMPT) for ex in examples]
    end_ids = {i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None}
    stop_text = StopText(tok, [ANSWER_OPEN])
    methods = {
        "generate": lambda b, s: generate_path(model, tok, b, args.n, args.temperature, args.top_p, args.budget, s,
                                               end_ids, tok.pad_token_id),
        "sampler": lambda b, s: sample(model, b, args.n, args.temperature, args.top_p, args.budget, s, end_ids,
                                       stop_text, tok.pad_token_id),
    }
    stats = {m: {"seconds": 0.0, "tokens": 0, "samples": 0, "stopped": 0} for m in methods}
    for start in range(0, len(prompts), args.batch):
        batch = prompts[start:start + args.batch]
        for name, fn in methods.items():
            t0 = time.perf_counter()
            out = fn(batch, start)
            stats[name]["seconds"] += time.perf_counter() - t0
            stats[name]["tokens"] += sum(len(s) for s in out)
            stats[name]["samples"] += len(out)
            stats[name]["stopped"] += sum(ANSWER_OPEN in tok.decode(s) for s in out)
        print(f"users {start + len(batch)}/{len(prompts)}: " + ", ".join(
            f"{m} {v['seconds']:.1f} s" for m, v in stats.items()), flush=True)
    for v in stats.values():
        v["tokens_per_s"] = round(v["tokens"] / v["seconds"], 1)
        v["seconds_per_user"] = round(v["seconds"] / len(prompts), 2)
        v["stop_share"] = round(v["stopped"] / v["samples"], 3)
        v["mean_tokens"] = round(v["tokens"] / v["samples"], 1)
    report = {"run": str(args.run), "users": len(prompts), "n": args.n, "temperature": args.temperature,
              "top_p": args.top_p, "budget": args.budget, "dtype": args.dtype, "threads": torch.get_num_threads(), "methods": stats,
              "speedup_tokens_per_s": round(stats["sampler"]["tokens_per_s"] / stats["generate"]["tokens_per_s"], 2)}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
