"""The ``data`` stage: load + validate a dataset (LC-Rec folder or raw Amazon dumps) and write the split.

Item ids are dense (``0..N-1``) in every output; ``item_map.json`` maps each dense id to the user's own id (the
LC-Rec id, or the ASIN of a raw Amazon dump) and every split row carries its target's own id as ``target_item``.
Items with an empty title or description are kept; ``stats.json`` counts them (``text_gaps``) and a warning says how
many there are.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from gream_pipeline.data.amazon_raw import preprocess
from gream_pipeline.data.lcrec import Dataset, find_file, load_lcrec, missing_file, parse_items, parse_sequences, \
    text_gaps
from gream_pipeline.data.split import leave_one_out
from gream_pipeline.errors import DataError
from gream_pipeline.stages import Stage, StageContext

log = logging.getLogger("gream")


def _existing(path: str | Path, what: str, key: str, folder: bool = False) -> Path:
    path = Path(str(path))
    if not path.exists():
        raise DataError(f"{path}: {what} not found ({key}={path})")
    if folder and not path.is_dir():
        raise DataError(f"{path}: is a file; {key} must be the LC-Rec folder that holds it, e.g. {key}={path.parent}")
    if not folder and path.is_dir():
        raise DataError(f"{path}: is a folder; {key} must be a file ({what})")
    return path


def data_inputs(cfg: DictConfig) -> list[Path]:
    ds = cfg.dataset
    if ds.format == "amazon_raw":
        return [_existing(ds.reviews, "reviews file", "dataset.reviews"),
                _existing(ds.meta, "metadata file", "dataset.meta")]
    if ds.format != "lcrec":
        raise DataError(f"dataset.format: unknown format {ds.format!r} (expected 'lcrec' or 'amazon_raw')")
    folder = _existing(ds.path, "dataset folder", "dataset.path", folder=True)
    inter = find_file(folder, str(ds.file_prefix), ".inter.json")
    if inter is None:
        raise missing_file(folder, str(ds.file_prefix), ".inter.json")
    extra = [find_file(folder, str(ds.file_prefix), suffix) for suffix in (".item.json", ".reviews.json")]
    return [inter] + [p for p in extra if p is not None]


def load_dataset(cfg: DictConfig, warnings: list[str] | None = None) -> Dataset:
    ds = cfg.dataset
    if ds.format == "amazon_raw":
        raw = preprocess(Path(ds.reviews), Path(ds.meta), k=int(ds.k_core),
                         max_reviews_per_item=int(ds.max_reviews_per_item))
        sequences = parse_sequences(Path(ds.reviews), raw["inter"], int(cfg.data.min_items_per_user))
        items = parse_items(Path(ds.meta), raw["item"])
        reviews = {int(k): v for k, v in raw["reviews"].items()}
        return Dataset(name=str(ds.name), sequences=sequences, items=items, reviews=reviews,
                       item_ids=list(raw["item_ids"]), item_file=Path(ds.meta))
    return load_lcrec(Path(ds.path), str(ds.file_prefix), min_items=int(cfg.data.min_items_per_user),
                      warnings=warnings)


def run_data(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    warnings: list[str] = []
    dataset = load_dataset(cfg, warnings)
    split = leave_one_out(dataset.sequences, max_history=int(cfg.data.max_history))
    gaps = text_gaps(dataset.items)
    if dataset.items and any(gaps.values()):
        warnings.append(f"{dataset.item_file}: {gaps['empty_title']} item(s) with an empty title, "
                        f"{gaps['empty_description']} with an empty description ({gaps['no_text']} with no text at "
                        f"all) are kept, their text taken from the other fields; counted in stats.json text_gaps")
    for warning in warnings:
        log.warning("%s", warning)
    own = dataset.item_ids
    ctx.write_json("inter.json", dataset.sequences, indent=None)
    ctx.write_json("items.json", {str(k): v for k, v in sorted(dataset.items.items())}, indent=None)
    ctx.write_json("item_map.json", {str(i): item for i, item in enumerate(own)}, indent=None)
    if dataset.reviews:
        ctx.write_json("reviews.json", {str(k): v for k, v in sorted(dataset.reviews.items())}, indent=None)
    counts = {name: ctx.write_jsonl(f"{name}.jsonl", ({**e.to_dict(), "target_item": own[e.target]} for e in examples))
              for name, examples in split.items()}
    lengths = [len(s) for s in dataset.sequences.values()]
    stats = {
        "dataset": dataset.name,
        "users": len(dataset.sequences),
        "items": dataset.num_items,
        "interactions": dataset.num_interactions,
        "has_text": dataset.has_text,
        "mean_sequence_length": sum(lengths) / len(lengths),
        "split": counts,
        "text_gaps": gaps,
        "item_ids_remapped": own != list(range(len(own))),
    }
    ctx.write_json("stats.json", stats)
    return stats


DATA = Stage(
    "data", config=("dataset", "data"), run=run_data, external=data_inputs,
    produces=("inter.json", "items.json", "item_map.json", "train.jsonl", "valid.jsonl", "test.jsonl", "stats.json"),
    description="load + validate an LC-Rec folder or raw Amazon dumps; leave-one-out split (reviews.json if any); "
                "item_map.json: dense item id → the dataset's own id")
