"""Direct-mode decoding benchmark: users/s of the trie-beam fast path vs the naive
`generate(num_beams, prefix_allowed_tokens_fn)` baseline, on the same model and users, in one run.

Defaults: a random ~6M-parameter Qwen3 (byte-level BPE vocabulary ~8k incl. 1,032 ID tokens) and a fake 4-level
index with the Scientific item count (4,344), 30 users with 20-item histories, 20 beams, top-10.
Real checkpoints: `--model-dir runs/<run>/sft/model --index runs/<run>/index/index.json [--examples test.jsonl]`.

    python bench/decode.py [--users 30] [--batch-size 8] [--dtype float32] [--out runs/bench/decode.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gream_pipeline.eval.beam import generate_beam_baseline, trie_beam_search  # noqa: E402
from gream_pipeline.eval.prompts import default_direct_prompt, render  # noqa: E402
from gream_pipeline.eval.trie import IDCatalog, TokenTrie, token_ids_for  # noqa: E402
from tests.fixtures.tiny import DEFAULT_TEXT, build_tiny_model, fake_examples, fake_index  # noqa: E402

SCIENTIFIC_ITEMS = Path("/work/shared/datasets/Scientific/Scientific.item.json")


def _texts() -> list[str]:
    """Tokenizer training text: Scientific titles/descriptions when available, else a stock paragraph."""
    if SCIENTIFIC_ITEMS.exists():
        items = json.loads(SCIENTIFIC_ITEMS.read_text())
        return [f"{v.get('title', '')} {v.get('description', '')[:300]}" for v in items.values()] + [DEFAULT_TEXT]
    return [DEFAULT_TEXT] * 10


def _batches(xs: list, size: int) -> list[list]:
    return [xs[i:i + size] for i in range(0, len(xs), size)]


def _timed(fn, batches) -> tuple[list, float]:
    out, t0 = [], time.perf_counter()
    for b in batches:
        out.extend(fn(b))
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, help="HF causal-LM dir with ID tokens (default: build a random one)")
    ap.add_argument("--index", type=Path, help="index.json {item: [tokens]} (default: fake 4-level index)")
    ap.add_argument("--examples", type=Path, help="split JSONL {user, history, target} (default: random users)")
    ap.add_argument("--n-items", type=int, default=4344, help="fake index size (Scientific: 4,344 items)")
    ap.add_argument("--users", type=int, default=30)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8, help="users per call, both methods")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "decode.json")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = build_tiny_model(Path(tempfile.mkdtemp(prefix="bench_decode_")) / "model", texts=_texts(),
                                     vocab_size=7000, hidden=256, layers=4, heads=4, kv_heads=2, intermediate=1024)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, args.dtype)).eval()
    index = json.loads(args.index.read_text()) if args.index else fake_index(args.n_items)
    if args.examples:
        examples = [json.loads(x) for x in args.examples.read_text().splitlines() if x.strip()][: args.users]
    else:
        examples = fake_examples(index, args.users, history=args.history)
    cat = IDCatalog.from_index(index)
    trie = TokenTrie.build(cat, token_ids_for(tok, cat))
    tables = trie.tensors()
    prompts = [render(tok, default_direct_prompt([cat.item_to_id[str(i)] for i in e["history"][-args.history:]]))
               for e in examples]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    fast = lambda b: trie_beam_search(model, b, trie, args.beams, args.top_k, pad, tables)  # noqa: E731
    base = lambda b: generate_beam_baseline(model, b, trie, args.beams, args.top_k, pad, tok.eos_token_id)  # noqa
    fast(prompts[:1]), base(prompts[:1])  # warm-up
    batches = _batches(prompts, args.batch_size)
    fast_out, fast_s = _timed(fast, batches)
    base_out, base_s = _timed(base, batches)
    same = sum([i for i, _ in f] == [i for i, _ in b] for f, b in zip(fast_out, base_out))
    overlap = sum(len({i for i, _ in f} & {i for i, _ in b}) / max(1, len(f)) for f, b in zip(fast_out, base_out))
    n = len(prompts)
    result = {
        "model_dir": str(model_dir), "params": sum(p.numel() for p in model.parameters()), "vocab": len(tok),
        "dtype": args.dtype, "threads": args.threads, "n_ids": len(cat.ids), "users": n, "beams": args.beams,
        "top_k": args.top_k, "batch_size": args.batch_size,
        "prompt_tokens_mean": round(sum(map(len, prompts)) / n, 1),
        "fast": {"seconds": round(fast_s, 3), "users_per_s": round(n / fast_s, 3)},
        "generate_baseline": {"seconds": round(base_s, 3), "users_per_s": round(n / base_s, 3)},
        "speedup": round(base_s / fast_s, 2),
        "top_k_identical_users": same, "top_k_overlap_mean": round(overlap / n, 4),
    }
    print(f"fast path (trie beam, cached prompt): {result['fast']['users_per_s']:.2f} users/s ({fast_s:.1f} s)")
    print(f"generate + prefix_allowed_tokens_fn:  {result['generate_baseline']['users_per_s']:.2f} users/s "
          f"({base_s:.1f} s)")
    print(f"speedup {result['speedup']}×; identical top-{args.top_k}: {same}/{n} users")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
