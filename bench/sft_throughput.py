"""SFT step-cost benchmark for the embedded default: examples/s of forward + backward + AdamW on
a scratch Qwen3, for several model sizes, batch sizes, precisions and thread counts, side by side in one run.

Measures the model step only (no LLaMA-Factory data pipeline), on random token batches of the length a direct-mode
SFT example has (system + question + history of IDs + answer ≈ 100–160 tokens), so the *ratios* guide the choice of
``recipes/model/*.yaml`` and ``sft.per_device_batch``; absolute numbers depend on the machine's other load.

    python bench/sft_throughput.py [--seq-len 128] [--steps 6] [--out runs/bench/sft_throughput.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

SIZES = {  # name: (hidden, layers, heads, kv_heads, intermediate)
    "h128-l2": (128, 2, 4, 2, 384),
    "h256-l4": (256, 4, 4, 2, 768),
    "h384-l4": (384, 4, 6, 2, 1152),
}


def step_seconds(size: str, batch: int, seq_len: int, vocab: int, bf16: bool, threads: int, steps: int,
                 grad_ckpt: bool = False) -> float:
    """Median seconds of one optimizer step (after one warm-up step); ``grad_ckpt`` turns on gradient
    checkpointing as LLaMA-Factory does by default."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hidden, layers, heads, kv, inter = SIZES[size]
    model = Qwen3ForCausalLM(Qwen3Config(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                         num_attention_heads=heads, num_key_value_heads=kv, head_dim=hidden // heads,
                                         intermediate_size=inter, max_position_embeddings=1024,
                                         tie_word_embeddings=True))
    if grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, vocab, (batch, seq_len))
    labels = ids.clone()
    labels[:, : seq_len - 6] = -100  # only the answer (ID + EOS) is supervised, as in SFT
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    times = sorted(times[1:])
    return times[len(times) // 2]


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=9048, help="scratch BPE 8000 + ~1,000 ID tokens")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES))
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 64])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--grad-ckpt", nargs="+", type=int, default=[0], help="0/1: gradient checkpointing off/on")
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp32"])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/sft_throughput.json"))
    args = ap.parse_args(argv)
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            for precision in args.precisions:
                for threads in args.threads:
                    for ckpt in args.grad_ckpt:
                        bf16 = precision == "bf16"
                        s = step_seconds(size, batch, args.seq_len, args.vocab, bf16, threads, args.steps, bool(ckpt))
                        row = {"size": size, "batch": batch, "bf16": bf16, "threads": threads, "grad_ckpt": bool(ckpt),
                               "seq_len": args.seq_len, "step_s": round(s, 4), "examples_per_s": round(batch / s, 1)}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
