"""The ``index`` stage: fuse item texts, embed, quantise with RQ-KMeans and assign unique semantic IDs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gream_pipeline.artifacts import write_json_atomic
from gream_pipeline.data.split import training_sequences
from gream_pipeline.errors import GreamError
from gream_pipeline.index.embedders import get_embedder, l2_normalize
from gream_pipeline.index.ids import assign_ids, collision_stats, vocabulary
from gream_pipeline.index.plot import plot_code_usage
from gream_pipeline.index.rqkmeans import rq_kmeans
from gream_pipeline.index.text import fuse_item_text
from gream_pipeline.stages import Stage, require_stage, stage_dir

TEXT_EMBEDDERS = {"sentence", "hf_causal_lm"}


def codebook_sizes(cfg: DictConfig) -> list[int]:
    """Per-level codebook sizes from ``index.codebook_sizes`` or ``index.levels`` × ``index.codebook_size``."""
    idx = cfg.index
    sizes = list(idx.codebook_sizes) if idx.codebook_sizes else [int(idx.codebook_size)] * int(idx.levels)
    if len(sizes) != int(idx.levels):
        raise GreamError(f"index.codebook_sizes has {len(sizes)} entries but index.levels={idx.levels}")
    if not 1 <= len(sizes) <= 25 or any(int(s) < 1 for s in sizes):
        raise GreamError(f"index: invalid codebook sizes {sizes} (1–25 levels, each size >= 1)")
    return [int(s) for s in sizes]


def index_inputs(cfg: DictConfig) -> list[Path]:
    data = stage_dir(cfg, "data")
    paths = [data / "items.json", data / "inter.json"] + ([data / "reviews.json"] if (data / "reviews.json").is_file() else [])
    if cfg.index.text_source == "enriched":
        paths.append(require_stage(cfg, "synth") / "enriched_items.json")
    require_stage(cfg, "data")
    return paths


def _read(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def item_texts(cfg: DictConfig, items: dict, reviews: dict, num_items: int) -> list[str]:
    idx = cfg.index
    enriched = _read(require_stage(cfg, "synth") / "enriched_items.json") if idx.text_source == "enriched" else {}
    if idx.text_source not in ("original", "enriched"):
        raise GreamError(f"index.text_source: {idx.text_source!r} is not 'original' or 'enriched'")
    texts = []
    for item in range(num_items):
        record = items.get(str(item), {})
        revs = reviews.get(str(item), []) if idx.use_reviews else []
        texts.append(fuse_item_text(record, list(idx.text_fields), revs, int(idx.max_chars), enriched.get(str(item))))
    return texts


def embed(cfg: DictConfig, data_dir: Path) -> np.ndarray:
    idx = cfg.index
    items, sequences = _read(data_dir / "items.json"), _read(data_dir / "inter.json")
    reviews = _read(data_dir / "reviews.json") if (data_dir / "reviews.json").is_file() else {}
    num_items = max(max((int(k) for k in items), default=-1), max(i for s in sequences.values() for i in s)) + 1
    embedder = get_embedder(idx.embedder)
    if idx.embedder in TEXT_EMBEDDERS:
        if not items:
            raise GreamError(f"index.embedder={idx.embedder}: dataset {cfg.dataset.name!r} has no item texts "
                             f"({data_dir / 'items.json'} is empty); use index.embedder=collaborative")
        texts = item_texts(cfg, items, reviews, num_items)
        return embedder(texts, model=idx.embedder_model, batch_size=int(idx.batch_size), max_length=int(idx.max_length),
                        dtype=str(idx.dtype))
    return embedder(sequences=training_sequences(sequences), num_items=num_items, dim=int(idx.collaborative.dim),
                    window=int(idx.collaborative.window), seed=int(cfg.seed))


def run_index(cfg: DictConfig, out: Path) -> dict:
    sizes = codebook_sizes(cfg)
    started = time.time()
    emb = embed(cfg, stage_dir(cfg, "data"))
    if cfg.index.normalize:
        emb = l2_normalize(emb)
    embedded = time.time()
    rq = rq_kmeans(emb, sizes, niter=int(cfg.index.kmeans_iters), seed=int(cfg.seed))
    quantised = time.time()
    index = assign_ids(range(len(emb)), rq.codes, conflict_slot=bool(cfg.index.conflict_slot))
    stats = collision_stats(index, levels=len(sizes))
    slot_size = max((int(t[-1][3:-1]) + 1 for t in index.values() if len(t) > len(sizes)), default=0)
    np.save(out / "embeddings.npy", emb)
    np.save(out / "codes.npy", rq.codes)
    write_json_atomic(out / "index.json", {str(k): v for k, v in sorted(index.items())}, indent=None)
    write_json_atomic(out / "vocab.json", vocabulary(sizes, slot_size))
    plot_code_usage(rq.codes, sizes, out / "code_usage.png",
                    title=f"{cfg.dataset.name}: {cfg.index.embedder} embeddings, collisions "
                          f"{stats['collision_rate_before_slot']:.2%} before the slot")
    report = {
        **stats,
        "dataset": cfg.dataset.name,
        "embedder": cfg.index.embedder,
        "embedding_dim": int(emb.shape[1]),
        "codebook_sizes": sizes,
        "conflict_slot_size": slot_size,
        "mean_residual_norm_per_level": [round(v, 5) for v in rq.residual_norms],
        "seconds": round(time.time() - started, 3),
        "seconds_embed": round(embedded - started, 3),
        "seconds_quantise": round(quantised - embedded, 3),
    }
    write_json_atomic(out / "report.json", report)
    return report


INDEX = Stage("index", ("index", "seed", "dataset.name"), index_inputs, run_index)

