"""Load and validate datasets in LC-Rec format (``<D>.inter.json``, optional ``<D>.item.json``, ``<D>.reviews.json``).

Every problem is reported as a :class:`DataError` naming the file, the offending key or line and the value: bytes
that are not UTF-8 (with their offset), malformed JSON (line and column), wrong types, unknown or repeated ids.
Content gaps that real catalogues have are not errors: an item whose title or description is empty (or made only of
whitespace/control characters, or ``null``) is kept with that field empty, and :func:`text_gaps` counts such items.
Item ids may be any non-negative integers (sparse, or as large as 2**63): they are remapped to dense ids
``0..N-1`` in increasing order, and ``Dataset.item_ids[dense]`` keeps the user's own id (see :func:`densify`).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gream_pipeline.errors import DataError

TEXT_FIELDS = ("title", "description", "brand", "categories")
#: Fields that may also be a list of strings (joined with ", ").
LIST_FIELDS = ("categories",)
#: Whitespace control characters kept inside texts (a description may hold tabs or line breaks).
_KEPT_CONTROLS = {"\t", "\n", "\r"}


@dataclass
class Dataset:
    """Chronological user sequences plus (possibly empty) item texts. Item ids are dense ints; users are strings.

    ``item_ids[i]`` is the user's own id of dense item ``i`` (an int for LC-Rec, the ASIN for raw Amazon dumps);
    ``item_file`` is the file the item texts came from (named in warnings).
    """

    name: str
    sequences: dict[str, list[int]]
    items: dict[int, dict[str, str]] = field(default_factory=dict)
    reviews: dict[int, list[str]] = field(default_factory=dict)
    item_ids: list[Any] = field(default_factory=list)
    item_file: Path | None = None

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


def clean_field(text: str) -> str:
    """``text`` without control/format characters (tabs and line breaks kept) and surrounding whitespace.

    A title made only of control characters is therefore empty; lone surrogates (``"\\ud800"`` in JSON), which
    cannot be written as UTF-8, are removed too.
    """
    if text.isprintable():
        return text.strip()
    return "".join(c for c in text if c in _KEPT_CONTROLS or unicodedata.category(c) not in ("Cc", "Cf", "Cs")).strip()


def read_text(path: Path) -> str:
    """A file's text, which must be UTF-8 (a leading byte-order mark is allowed)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; allowed: a JSON file")
    data = path.read_bytes()
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        pos = start + err.start
        line = data.count(b"\n", 0, pos) + 1
        col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
        raise DataError(f"{path}: not UTF-8: byte 0x{data[pos]:02x} at byte offset {pos} (line {line}, column {col}); "
                        f"allowed: UTF-8 text (convert it, e.g. `iconv -f latin1 -t utf-8`)") from None


def _reject_duplicate_keys(path: Path):
    def hook(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise DataError(f"{path}: duplicate key {key!r}")
            out[key] = value
        return out

    return hook


def _no_constant(path: Path):
    def hook(name: str) -> None:
        raise DataError(f"{path}: {name} is not valid JSON (allowed: numbers, strings, lists, objects, null)")

    return hook


def read_json_object(path: Path) -> dict:
    """Read a UTF-8 JSON file whose top level must be an object, rejecting duplicate keys."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: empty file; allowed: a JSON object")
    try:
        obj = json.loads(text, object_pairs_hook=_reject_duplicate_keys(path), parse_constant=_no_constant(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: top level must be a JSON object, got {json_kind(obj)}")
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


def _check_key(path: Path, what: str, key: str) -> None:
    if not clean_field(key) or any(unicodedata.category(c) in ("Cc", "Cs") for c in key):
        raise DataError(f"{path}: {what} {key!r}: empty or not printable text; allowed: a printable, non-empty id")


def parse_sequences(path: Path, raw: dict, min_items: int = 2) -> dict[str, list[int]]:
    """Validate ``{"user": [item, ...]}``: lists of non-negative int ids, no repeats, at least ``min_items``."""
    sequences: dict[str, list[int]] = {}
    for user, seq in raw.items():
        _check_key(path, "user", str(user))
        if not isinstance(seq, list):
            raise DataError(f"{path}: user {user!r}: expected a list of item ids, got {json_kind(seq)}")
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


def _as_text(path: Path, key: str, name: str, value: object) -> str:
    """A text field: a string, ``null``/absent (an empty gap) or, for list fields, a list of strings."""
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_field(value)
    if name in LIST_FIELDS and isinstance(value, list):
        for i, part in enumerate(value):
            if part is not None and not isinstance(part, str):
                raise DataError(f"{path}: item {key!r}: field {name!r}: element {i} is {json_kind(part)} "
                                f"({json.dumps(part)[:60]}); allowed: a string, a list of strings or null")
        return ", ".join(t for t in (clean_field(p) for p in value if p is not None) if t)
    allowed = "a string, a list of strings or null" if name in LIST_FIELDS else "a string or null"
    shown = json.dumps(value, ensure_ascii=False)[:80]
    raise DataError(f"{path}: item {key!r}: field {name!r} is {json_kind(value)} ({shown}); allowed: {allowed}")


def json_kind(value: object) -> str:
    """The JSON type of a value, with its article ("an object", "a boolean", ...)."""
    kinds = {bool: "a boolean", dict: "an object", list: "a list", tuple: "a list", int: "a number",
             float: "a number", str: "a string", type(None): "null"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def parse_items(path: Path, raw: dict) -> dict[int, dict[str, str]]:
    """Validate ``{"item": {"title", "description", "brand", "categories"}}`` (other fields are ignored).

    Empty titles/descriptions are kept (see :func:`text_gaps`); a catalogue in which no item has a title is an error.
    """
    items: dict[int, dict[str, str]] = {}
    for key, record in raw.items():
        item = _as_item_id(path, f"key {key!r}", key)
        if item in items:
            raise DataError(f"{path}: duplicate item id {key!r}")
        if not isinstance(record, dict):
            raise DataError(f"{path}: item {key!r}: expected an object, got {json_kind(record)}")
        items[item] = {f: _as_text(path, key, f, record.get(f)) for f in TEXT_FIELDS}
    if items and not any(text["title"] for text in items.values()):
        raise DataError(f"{path}: none of its {len(items)} items has a title; allowed: item records "
                        f"{{\"title\": ..., \"description\": ..., \"brand\": ..., \"categories\": ...}}")
    return items


def text_gaps(items: dict[int, dict[str, str]]) -> dict[str, int]:
    """Items kept with an empty title, with an empty description, and with no text in any field."""
    return {"empty_title": sum(not t.get("title") for t in items.values()),
            "empty_description": sum(not t.get("description") for t in items.values()),
            "no_text": sum(not any(t.get(f) for f in TEXT_FIELDS) for t in items.values())}


def parse_reviews(path: Path, raw: dict) -> dict[int, list[str]]:
    """Validate ``{"item": ["review text", ...]}``: item-id keys, lists of strings (``null``/empty entries skipped)."""
    reviews: dict[int, list[str]] = {}
    for key, texts in raw.items():
        item = _as_item_id(path, f"key {key!r}", key)
        if item in reviews:
            raise DataError(f"{path}: duplicate item id {key!r}")
        if not isinstance(texts, list):
            raise DataError(f"{path}: item {key!r}: expected a list of review texts, got {json_kind(texts)} "
                            f"({json.dumps(texts)[:60]})")
        out = []
        for i, text in enumerate(texts):
            if text is None:
                continue
            if not isinstance(text, str):
                raise DataError(f"{path}: item {key!r}: review {i} is {json_kind(text)} ({json.dumps(text)[:60]}); "
                                f"allowed: a string")
            if clean_field(text):
                out.append(clean_field(text))
        reviews[item] = out
    return reviews


def check_known_items(path: Path, sequences: dict[str, list[int]], items: dict[int, dict]) -> None:
    """Every interacted item must have a record in the item file."""
    for user, seq in sequences.items():
        for item in seq:
            if item not in items:
                raise DataError(f"{path}: user {user!r}: unknown item id {item} (not in the item file)")


def densify(sequences: dict[str, list[int]], items: dict[int, dict], reviews: dict[int, list[str]]
            ) -> tuple[dict[str, list[int]], dict[int, dict], dict[int, list[str]], list[int], int]:
    """Remap item ids to ``0..N-1`` in increasing order of the user's ids (the identity for dense catalogues).

    Returns the remapped sequences, items and reviews, the user's id of each dense id, and the number of reviewed
    items that are in neither the sequences nor the item file (their reviews are dropped).
    """
    ids = sorted({i for seq in sequences.values() for i in seq} | set(items))
    if ids == list(range(len(ids))):
        dropped = [k for k in reviews if k >= len(ids)]
        return sequences, items, {k: v for k, v in reviews.items() if k < len(ids)}, ids, len(dropped)
    dense = {orig: i for i, orig in enumerate(ids)}
    sequences = {u: [dense[i] for i in seq] for u, seq in sequences.items()}
    items = {dense[k]: v for k, v in items.items()}
    kept = {dense[k]: v for k, v in reviews.items() if k in dense}
    return sequences, items, kept, ids, len(reviews) - len(kept)


def find_file(folder: Path, name: str, suffix: str) -> Path | None:
    """``<folder>/<name><suffix>`` or the single ``*<suffix>`` file in the folder."""
    exact = folder / f"{name}{suffix}"
    if exact.is_file():
        return exact
    matches = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())
    return matches[0] if len(matches) == 1 else None


def missing_file(folder: Path, name: str, suffix: str) -> DataError:
    """The error for a folder without ``<name><suffix>``, naming the candidates it holds."""
    others = sorted(p.name for p in folder.glob(f"*{suffix}"))
    hint = (f"; the folder holds {', '.join(others)}: choose one with dataset.file_prefix="
            f"{others[0][:-len(suffix)]}" if others else f"; no *{suffix} file in {folder}")
    return DataError(f"{folder / (name + suffix)}: file not found{hint}")


def load_lcrec(folder: Path, name: str | None = None, min_items: int = 2, require_text: bool = False,
               warnings: list[str] | None = None) -> Dataset:
    """Load ``<folder>/<name>.inter.json`` and, when present, ``<name>.item.json`` and ``<name>.reviews.json``.

    Item ids are remapped to dense ids (:func:`densify`); problems that are no errors are appended to ``warnings``.
    """
    folder = Path(folder)
    if folder.is_file():
        raise DataError(f"{folder}: is a file; allowed: the LC-Rec folder that holds it ({folder.parent})")
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found")
    name = name or folder.name
    inter_path = find_file(folder, name, ".inter.json")
    if inter_path is None:
        raise missing_file(folder, name, ".inter.json")
    sequences = parse_sequences(inter_path, read_json_object(inter_path), min_items)
    item_path = find_file(folder, name, ".item.json")
    items: dict[int, dict[str, str]] = {}
    if item_path is not None:
        items = parse_items(item_path, read_json_object(item_path))
        check_known_items(inter_path, sequences, items)
    elif require_text:
        raise DataError(f"{folder / (name + '.item.json')}: file not found (this configuration needs item texts)")
    reviews_path = find_file(folder, name, ".reviews.json")
    reviews = parse_reviews(reviews_path, read_json_object(reviews_path)) if reviews_path is not None else {}
    sequences, items, reviews, item_ids, dropped = densify(sequences, items, reviews)
    if dropped and warnings is not None:
        warnings.append(f"{reviews_path}: {dropped} reviewed item(s) are in neither {inter_path.name} nor the item "
                        f"file; their reviews are ignored")
    return Dataset(name=name, sequences=sequences, items=items, reviews={k: v for k, v in reviews.items() if v},
                   item_ids=item_ids, item_file=item_path)
