"""Load and validate datasets in LC-Rec format (``<D>.inter.json``, optional ``<D>.item.json``).

Every problem is reported as a :class:`DataError` naming the file and the offending key or value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gream_pipeline.errors import DataError

TEXT_FIELDS = ("title", "description", "brand", "categories")


@dataclass
class Dataset:
    """Chronological user sequences plus (possibly empty) item texts. Item ids are ints; users are strings."""

    name: str
    sequences: dict[str, list[int]]
    items: dict[int, dict[str, str]] = field(default_factory=dict)
    reviews: dict[int, list[str]] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        seen = {i for seq in self.sequences.values() for i in seq}
        return max(len(self.items), max(seen) + 1 if seen else 0)

    @property
    def num_interactions(self) -> int:
        return sum(len(seq) for seq in self.sequences.values())

    @property
    def has_text(self) -> bool:
        return bool(self.items)


def _reject_duplicate_keys(path: Path):
    def hook(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise DataError(f"{path}: duplicate key {key!r}")
            out[key] = value
        return out

    return hook


def read_json_object(path: Path) -> dict:
    """Read a JSON file whose top level must be an object, rejecting duplicate keys."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path) as handle:
            obj = json.load(handle, object_pairs_hook=_reject_duplicate_keys(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: top level must be a JSON object, got {type(obj).__name__}")
    return obj


def _as_item_id(path: Path, where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{path}: {where}: item id {value!r} is not an integer")
    try:
        item = int(value)
    except ValueError:
        raise DataError(f"{path}: {where}: item id {value!r} is not an integer") from None
    if item < 0:
        raise DataError(f"{path}: {where}: item id {value!r} is negative")
    return item


def parse_sequences(path: Path, raw: dict, min_items: int = 2) -> dict[str, list[int]]:
    """Validate ``{"user": [item, ...]}``: lists of non-negative int ids, no repeats, at least ``min_items``."""
    sequences: dict[str, list[int]] = {}
    for user, seq in raw.items():
        if not isinstance(seq, list):
            raise DataError(f"{path}: user {user!r}: expected a list of item ids, got {type(seq).__name__}")
        items = [_as_item_id(path, f"user {user!r}", v) for v in seq]
        if len(items) < min_items:
            raise DataError(f"{path}: user {user!r} has {len(items)} item(s); at least {min_items} are required")
        if len(set(items)) != len(items):
            dup = next(i for i in items if items.count(i) > 1)
            raise DataError(f"{path}: user {user!r}: duplicate item id {dup} in the sequence")
        sequences[str(user)] = items
    if not sequences:
        raise DataError(f"{path}: no users")
    return sequences


def parse_items(path: Path, raw: dict) -> dict[int, dict[str, str]]:
    """Validate ``{"item": {"title", "description", "brand", "categories"}}``; titles must be non-empty."""
    items: dict[int, dict[str, str]] = {}
    for key, record in raw.items():
        item = _as_item_id(path, f"key {key!r}", key)
        if item in items:
            raise DataError(f"{path}: duplicate item id {key!r}")
        if not isinstance(record, dict):
            raise DataError(f"{path}: item {key!r}: expected an object, got {type(record).__name__}")
        text = {f: _as_text(record.get(f, "")) for f in TEXT_FIELDS}
        if not text["title"].strip():
            raise DataError(f"{path}: item {key!r}: empty title")
        items[item] = text
    return items


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_as_text(v) for v in value if v)
    return str(value).strip()


def check_known_items(path: Path, sequences: dict[str, list[int]], items: dict[int, dict]) -> None:
    """Every interacted item must have a record in the item file."""
    for user, seq in sequences.items():
        for item in seq:
            if item not in items:
                raise DataError(f"{path}: user {user!r}: unknown item id {item} (not in the item file)")


def find_file(folder: Path, name: str, suffix: str) -> Path | None:
    """``<folder>/<name><suffix>`` or the single ``*<suffix>`` file in the folder."""
    exact = folder / f"{name}{suffix}"
    if exact.is_file():
        return exact
    matches = sorted(folder.glob(f"*{suffix}"))
    return matches[0] if len(matches) == 1 else None


def load_lcrec(folder: Path, name: str | None = None, min_items: int = 2, require_text: bool = False) -> Dataset:
    """Load ``<folder>/<name>.inter.json`` and, when present, ``<name>.item.json``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found")
    name = name or folder.name
    inter_path = find_file(folder, name, ".inter.json")
    if inter_path is None:
        raise DataError(f"{folder / (name + '.inter.json')}: file not found")
    sequences = parse_sequences(inter_path, read_json_object(inter_path), min_items)
    item_path = find_file(folder, name, ".item.json")
    items: dict[int, dict[str, str]] = {}
    if item_path is not None:
        items = parse_items(item_path, read_json_object(item_path))
        check_known_items(inter_path, sequences, items)
    elif require_text:
        raise DataError(f"{folder / (name + '.item.json')}: file not found (this configuration needs item texts)")
    reviews_path = folder / f"{name}.reviews.json"
    reviews = {int(k): list(v) for k, v in read_json_object(reviews_path).items()} if reviews_path.is_file() else {}
    return Dataset(name=name, sequences=sequences, items=items, reviews=reviews)
