"""The ``index`` stage: fuse item texts, embed, quantise with RQ-KMeans and assign unique semantic IDs."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from omegaconf import DictConfig
from threadpoolctl import threadpool_limits

from gream_pipeline import semantic_ids
from gream_pipeline.data.split import training_sequences
from gream_pipeline.errors import GreamError
from gream_pipeline.index.embedders import get_embedder, l2_normalize
from gream_pipeline.index.ids import assign_ids, collision_stats, vocabulary
from gream_pipeline.index.plot import plot_code_usage
from gream_pipeline.index.rqkmeans import rq_kmeans
from gream_pipeline.index.text import fuse_item_text
from gream_pipeline.stages import Input, Stage, StageContext

TEXT_EMBEDDERS = {"sentence", "hf_causal_lm"}
log = logging.getLogger("gream")


def codebook_sizes(cfg: DictConfig) -> list[int]:
    """Per-level codebook sizes from ``index.codebook_sizes`` or ``index.levels`` × ``index.codebook_size``."""
    idx = cfg.index
    if not 1 <= int(idx.levels) <= 25:
        raise GreamError(f"index.levels={idx.levels}: allowed: an integer in 1..25")
    sizes = list(idx.codebook_sizes) if idx.codebook_sizes else [int(idx.codebook_size)] * int(idx.levels)
    named = "index.codebook_sizes" if idx.codebook_sizes else "index.codebook_size"
    if len(sizes) != int(idx.levels):
        raise GreamError(f"index.codebook_sizes has {len(sizes)} entries but index.levels={idx.levels}")
    if any(int(s) < 1 for s in sizes):
        raise GreamError(f"{named}: invalid codebook sizes {sizes}; allowed: each size >= 1")
    return [int(s) for s in sizes]


def warn_codebooks(sizes: list[int], num_items: int) -> list[str]:
    """Warnings for codebooks larger than the catalogue (legal, but most codes and their tokens stay unused)."""
    if max(sizes) <= num_items:
        return []
    key = f"index.codebook_size={sizes[0]}" if len(set(sizes)) == 1 else f"index.codebook_sizes={sizes}"
    warning = (f"{key} is larger than the catalogue ({num_items} items): a level can use at most {num_items} of "
               f"its codes, yet vocab.json and the model get a token for each of the {sum(sizes)}; choose sizes "
               f"<= {num_items}")
    log.warning("%s", warning)
    return [warning]


def uses_enriched_texts(cfg: DictConfig) -> bool:
    return cfg.index.text_source == "enriched"


def item_texts(cfg: DictConfig, items: dict, reviews: dict, enriched: dict, num_items: int) -> list[str]:
    idx = cfg.index
    texts = []
    for item in range(num_items):
        record = items.get(str(item), {})
        revs = reviews.get(str(item), []) if idx.use_reviews else []
        texts.append(fuse_item_text(record, list(idx.text_fields), revs, int(idx.max_chars), enriched.get(str(item))))
    return texts


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Run the index's numeric work (scipy's SVD, faiss k-means) on ``threads`` BLAS and OpenMP threads.

    Sums split over a different number of threads round differently, and k-means amplifies the difference into other
    codes, so without the pin the semantic IDs would depend on the machine's core count.
    """
    import faiss  # noqa: F401  threadpoolctl limits only libraries that are already loaded
    import scipy.sparse.linalg  # noqa: F401

    with threadpool_limits(limits=threads):
        yield


def check_text_source(cfg: DictConfig) -> None:
    idx = cfg.index
    if idx.text_source not in ("original", "enriched"):
        raise GreamError(f"index.text_source: {idx.text_source!r} is not 'original' or 'enriched'")
    if idx.text_source == "enriched" and idx.embedder not in TEXT_EMBEDDERS:
        raise GreamError(f"index.text_source=enriched needs a text embedder (index.embedder one of "
                         f"{sorted(TEXT_EMBEDDERS)}); index.embedder={idx.embedder} does not read item texts")


def embed(ctx: StageContext) -> np.ndarray:
    cfg = ctx.cfg
    idx = cfg.index
    items, sequences = ctx.read_json("data", "items.json"), ctx.read_json("data", "inter.json")
    reviews = ctx.read_json("data", "reviews.json") if ctx.has_input("data", "reviews.json") else {}
    num_items = max(max((int(k) for k in items), default=-1), max(i for s in sequences.values() for i in s)) + 1
    embedder = get_embedder(idx.embedder)
    if idx.embedder in TEXT_EMBEDDERS:
        if not items:
            raise GreamError(f"index.embedder={idx.embedder}: dataset {cfg.dataset.name!r} has no item texts "
                             f"({ctx.input('data', 'items.json')} is empty); use index.embedder=collaborative")
        enriched = ctx.read_json("enrich", "enriched_items.json") if uses_enriched_texts(cfg) else {}
        texts = item_texts(cfg, items, reviews, enriched, num_items)
        ctx.write_json("texts.json", texts, indent=None)
        return embedder(texts, model=idx.embedder_model, batch_size=int(idx.batch_size), max_length=int(idx.max_length),
                        dtype=str(idx.dtype))
    with pinned_threads(int(idx.threads)):
        return embedder(sequences=training_sequences(sequences), num_items=num_items, dim=int(idx.collaborative.dim),
                        window=int(idx.collaborative.window), seed=int(cfg.seed))


def run_index(ctx: StageContext) -> dict:
    cfg, out = ctx.cfg, ctx.out
    check_text_source(cfg)
    sizes = codebook_sizes(cfg)
    started = time.time()
    emb = embed(ctx)
    warnings = warn_codebooks(sizes, len(emb))
    if cfg.index.normalize:
        emb = l2_normalize(emb)
    embedded = time.time()
    with pinned_threads(int(cfg.index.threads)):
        rq = rq_kmeans(emb, sizes, niter=int(cfg.index.kmeans_iters), seed=int(cfg.seed))
    quantised = time.time()
    index = assign_ids(range(len(emb)), rq.codes, conflict_slot=bool(cfg.index.conflict_slot))
    stats = collision_stats(index, levels=len(sizes))
    slot_size = semantic_ids.slot_size(index, len(sizes))
    np.save(out / "embeddings.npy", emb)
    np.save(out / "codes.npy", rq.codes)
    ctx.write_json("index.json", {str(k): v for k, v in sorted(index.items())}, indent=None)
    ctx.write_json("vocab.json", vocabulary(sizes, slot_size))
    plot_code_usage(rq.codes, sizes, out / "code_usage.png",
                    title=f"{cfg.dataset.name}: {cfg.index.embedder} embeddings, collisions "
                          f"{stats['collision_rate_before_slot']:.2%} before the slot")
    report = {
        **stats,
        "dataset": cfg.dataset.name,
        "embedder": cfg.index.embedder,
        "text_source": cfg.index.text_source if cfg.index.embedder in TEXT_EMBEDDERS else None,
        "embedding_dim": int(emb.shape[1]),
        "codebook_sizes": sizes,
        "conflict_slot_size": slot_size,
        "warnings": warnings,
        "mean_residual_norm_per_level": [round(v, 5) for v in rq.residual_norms],
        "seconds": round(time.time() - started, 3),
        "seconds_embed": round(embedded - started, 3),
        "seconds_quantise": round(quantised - embedded, 3),
    }
    ctx.write_json("report.json", report)
    return report


INDEX = Stage(
    "index", config=("index", "seed", "dataset.name"), run=run_index,
    consumes=(Input("data", "items.json"), Input("data", "inter.json"), Input("data", "reviews.json", optional=True),
              Input("enrich", "enriched_items.json", when=uses_enriched_texts)),
    produces=("index.json", "vocab.json", "report.json", "codes.npy", "embeddings.npy"),
    description="text fusion, embedding, RQ-KMeans (faiss) and the conflict slot → semantic IDs")

