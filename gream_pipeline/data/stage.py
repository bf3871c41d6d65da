"""The ``data`` stage: load + validate a dataset (LC-Rec folder or raw Amazon dumps) and write the split."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from gream_pipeline.artifacts import write_json_atomic, write_jsonl
from gream_pipeline.data.amazon_raw import preprocess
from gream_pipeline.data.lcrec import Dataset, find_file, load_lcrec, parse_items, parse_sequences
from gream_pipeline.data.split import leave_one_out
from gream_pipeline.errors import DataError
from gream_pipeline.stages import Stage


def _existing(path: str | Path, what: str) -> Path:
    path = Path(str(path))
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    return path


def data_inputs(cfg: DictConfig) -> list[Path]:
    ds = cfg.dataset
    if ds.format == "amazon_raw":
        return [_existing(ds.reviews, "reviews file"), _existing(ds.meta, "metadata file")]
    if ds.format != "lcrec":
        raise DataError(f"dataset.format: unknown format {ds.format!r} (expected 'lcrec' or 'amazon_raw')")
    folder = _existing(ds.path, "dataset folder")
    inter = find_file(folder, ds.file_prefix, ".inter.json")
    if inter is None:
        raise DataError(f"{folder / (ds.file_prefix + '.inter.json')}: file not found")
    extra = [find_file(folder, ds.file_prefix, suffix) for suffix in (".item.json", ".reviews.json")]
    return [inter] + [p for p in extra if p is not None]


def load_dataset(cfg: DictConfig) -> Dataset:
    ds = cfg.dataset
    if ds.format == "amazon_raw":
        raw = preprocess(Path(ds.reviews), Path(ds.meta), k=int(ds.k_core),
                         max_reviews_per_item=int(ds.max_reviews_per_item))
        sequences = parse_sequences(Path(ds.reviews), raw["inter"], int(cfg.data.min_items_per_user))
        items = parse_items(Path(ds.meta), raw["item"])
        reviews = {int(k): v for k, v in raw["reviews"].items()}
        return Dataset(name=ds.name, sequences=sequences, items=items, reviews=reviews)
    return load_lcrec(Path(ds.path), ds.file_prefix, min_items=int(cfg.data.min_items_per_user))


def run_data(cfg: DictConfig, out: Path) -> dict:
    dataset = load_dataset(cfg)
    split = leave_one_out(dataset.sequences, max_history=int(cfg.data.max_history))
    write_json_atomic(out / "inter.json", dataset.sequences, indent=None)
    write_json_atomic(out / "items.json", {str(k): v for k, v in sorted(dataset.items.items())}, indent=None)
    if dataset.reviews:
        write_json_atomic(out / "reviews.json", {str(k): v for k, v in sorted(dataset.reviews.items())}, indent=None)
    counts = {name: write_jsonl(out / f"{name}.jsonl", (e.to_dict() for e in examples))
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
    }
    write_json_atomic(out / "stats.json", stats)
    return stats


DATA = Stage("data", ("dataset", "data"), data_inputs, run_data)

