"""Preprocess raw Amazon review dumps (2014 and 2018 releases) into LC-Rec format.

Input: a reviews/ratings file (JSON lines, optionally gzipped; 2014 ``reviews_<Cat>_5.json.gz`` or 2018
``<Cat>.json.gz`` with ``reviewerID``, ``asin``, ``unixReviewTime``) and a metadata file (``meta_<Cat>.json.gz``;
2014 lines are Python dict literals, 2018 lines JSON). Steps: keep interactions whose item has a metadata record
(an empty title or description is a gap, not a reason to drop the item), drop repeated (user, item) pairs (first
review wins), apply iterative k-core filtering (default 5) on users and items, order each user's items by time
(ties keep file order), and renumber users and items ``0..N-1`` (items by first appearance in the time-ordered
stream; ``item_ids`` keeps each item's ASIN). Output is the LC-Rec format of the project's datasets. Every line
is checked: UTF-8, gzip integrity, JSON/literal syntax and the type of every field used, with the file, line and
field named.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from gream_pipeline.data.lcrec import clean_field, json_kind
from gream_pipeline.errors import DataError

_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Review:
    user: str
    asin: str
    time: int
    order: int
    text: str


GZIP_MAGIC = b"\x1f\x8b"
_CATEGORY_FIELDS = ("category", "categories")


def _open(path: Path):
    """A binary handle on ``path`` (gunzipped when it starts with the gzip signature) and whether it is gzip."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; allowed: a JSON-lines file (optionally .gz)")
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head == GZIP_MAGIC:
        return gzip.open(path, "rb"), True
    if path.suffix == ".gz":
        raise DataError(f"{path}: not a gzip file (its name ends in .gz but it does not start with the gzip "
                        f"signature 1f 8b); allowed: a gzip-compressed or plain JSON-lines file")
    return open(path, "rb"), False


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line; bytes that are not UTF-8 and corrupt gzip data are errors naming where."""
    handle, gz = _open(path)
    lineno, offset = 0, 0
    with handle:
        try:
            for lineno, raw in enumerate(handle, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    where = " of the uncompressed data" if gz else ""
                    raise DataError(f"{path}: line {lineno}: not UTF-8: byte 0x{raw[err.start]:02x} at byte offset "
                                    f"{offset + err.start}{where}; allowed: UTF-8 text") from None
                offset += len(raw)
                yield lineno, text.lstrip("\ufeff") if lineno == 1 else text
        except (EOFError, zlib.error, OSError) as err:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path}: truncated or corrupt gzip data after line {lineno} ({err}); allowed: a complete "
                            f"gzip file (download it again)") from None


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) from JSON lines or Python-literal lines (2014 metadata)."""
    for lineno, line in _lines(path):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as json_err:
            try:
                record = ast.literal_eval(line)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise DataError(f"{path}: line {lineno}: malformed record (neither JSON nor a dict literal; JSON: "
                                f"{json_err.msg} at column {json_err.colno})") from None
        except RecursionError:
            raise DataError(f"{path}: line {lineno}: record nested too deeply") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {lineno}: expected an object, got {json_kind(record)}")
        yield lineno, record


def _bad(path: Path, lineno: int, name: str, value: object, allowed: str) -> DataError:
    return DataError(f"{path}: line {lineno}: field {name!r} is {json_kind(value)} ({repr(value)[:60]}); "
                     f"allowed: {allowed}")


def clean_text(value: object) -> str:
    """Flatten lists, unescape HTML, strip tags, drop control characters and collapse whitespace."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        parts = [clean_text(v) for v in value]
        return " ".join(p for p in parts if p)
    text = _TAG.sub(" ", html.unescape(str(value)))
    return " ".join(clean_field(text).split())


def _text(path: Path, lineno: int, record: dict, name: str, lists: bool = False) -> str:
    """A text field of a raw record: a string or null/absent (a gap); with ``lists``, also a list of strings."""
    value = record.get(name)
    if value is None or isinstance(value, str):
        return clean_text(value)
    if lists and isinstance(value, (list, tuple)) and all(v is None or isinstance(v, str) for v in value):
        return clean_text(value)
    raise _bad(path, lineno, name, value, "a string, a list of strings or null" if lists else "a string or null")


def _identifier(path: Path, lineno: int, record: dict, name: str) -> str:
    if name not in record or record[name] is None:
        raise DataError(f"{path}: line {lineno}: missing field {name!r}")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad(path, lineno, name, value, "a string")
    text = clean_field(str(value))
    if not text:
        raise DataError(f"{path}: line {lineno}: field {name!r} is empty")
    return text


def _categories(path: Path, lineno: int, record: dict) -> str:
    """2018 ``category``: a list of names; 2014 ``categories``: a list of category paths (the first one is used).
    A single string is one category (not a list of characters)."""
    name = next((f for f in _CATEGORY_FIELDS if record.get(f)), None)
    if name is None:
        return ""
    cats = record[name]
    if isinstance(cats, str):
        cats = [cats]
    if not isinstance(cats, (list, tuple)):
        raise _bad(path, lineno, name, cats, "a list of strings (2018), a list of lists of strings (2014) or a string")
    if cats and isinstance(cats[0], (list, tuple)):  # 2014: list of category paths
        cats = cats[0]
    for c in cats:
        if not isinstance(c, str):
            raise DataError(f"{path}: line {lineno}: field {name!r}: element {c!r} is {json_kind(c)}; allowed: "
                            f"strings (2018) or lists of strings (2014)")
    return ", ".join(clean_text(c) for c in cats if clean_text(c))


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """asin → {title, description, brand, categories} for every record (empty texts are kept as gaps)."""
    meta: dict[str, dict[str, str]] = {}
    for lineno, record in tqdm(_records(path), desc="metadata", unit=" lines"):
        asin = _identifier(path, lineno, record, "asin")
        text = {
            "title": _text(path, lineno, record, "title"),
            "description": _text(path, lineno, record, "description", lists=True),
            "brand": _text(path, lineno, record, "brand"),
            "categories": _categories(path, lineno, record),
        }
        meta.setdefault(asin, text)
    return meta


def _time(path: Path, lineno: int, record: dict) -> int:
    if "unixReviewTime" not in record:
        raise DataError(f"{path}: line {lineno}: missing field 'unixReviewTime'")
    value = record["unixReviewTime"]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise DataError(f"{path}: line {lineno}: 'unixReviewTime' {value!r} is not an integer")


def read_reviews(path: Path) -> list[Review]:
    """All (user, item, time) events; missing or mistyped fields are errors naming the line."""
    reviews = []
    for lineno, record in tqdm(_records(path), desc="reviews", unit=" lines"):
        user = _identifier(path, lineno, record, "reviewerID")
        asin = _identifier(path, lineno, record, "asin")
        time = _time(path, lineno, record)
        text = _text(path, lineno, record, "reviewText")
        reviews.append(Review(user, asin, time, lineno, text))
    return reviews


def k_core(pairs: list[tuple[str, str]], k: int) -> set[tuple[str, str]]:
    """Iteratively drop users and items with fewer than ``k`` interactions until none remain."""
    kept = set(pairs)
    while True:
        users = Counter(u for u, _ in kept)
        items = Counter(i for _, i in kept)
        nxt = {(u, i) for u, i in kept if users[u] >= k and items[i] >= k}
        if nxt == kept:
            return kept
        kept = nxt


def preprocess(reviews_path: Path, meta_path: Path, k: int = 5, max_reviews_per_item: int = 5) -> dict:
    """Return ``{"inter": {...}, "item": {...}, "reviews": {...}, "stats": {...}}`` in LC-Rec format."""
    meta = read_metadata(meta_path)
    if not meta:
        raise DataError(f"{meta_path}: no item records; allowed: one record per line with 'asin' and 'title'")
    if not any(m["title"] for m in meta.values()):
        raise DataError(f"{meta_path}: none of its {len(meta)} item records has a title; allowed: the metadata dump "
                        f"(meta_<Category>.json.gz: asin, title, description, brand, category)")
    all_reviews = read_reviews(reviews_path)
    if not all_reviews:
        raise DataError(f"{reviews_path}: no reviews; allowed: one review per line (reviewerID, asin, unixReviewTime)")
    events = sorted((r for r in all_reviews if r.asin in meta), key=lambda r: (r.time, r.order))
    if not events:
        raise DataError(f"{meta_path}: none of the {len({r.asin for r in all_reviews})} items reviewed in "
                        f"{reviews_path} has a record in this metadata file (are both files of the same category?)")
    first: dict[tuple[str, str], Review] = {}
    for event in events:
        first.setdefault((event.user, event.asin), event)
    kept = k_core(list(first), k)
    if not kept:
        raise DataError(f"{reviews_path}: no interactions survive {k}-core filtering ({len(first)} distinct "
                        f"user-item pairs, {len({u for u, _ in first})} users, {len({i for _, i in first})} items "
                        f"before filtering); allowed: a smaller dataset.k_core")
    by_user: dict[str, list[Review]] = defaultdict(list)
    for event in events:
        if (event.user, event.asin) in kept and first[(event.user, event.asin)] is event:
            by_user[event.user].append(event)
    item_ids: dict[str, int] = {}
    for event in events:
        if (event.user, event.asin) in kept:
            item_ids.setdefault(event.asin, len(item_ids))
    users = sorted(by_user, key=lambda u: (by_user[u][0].time, by_user[u][0].order))
    inter = {str(n): [item_ids[e.asin] for e in by_user[u]] for n, u in enumerate(users)}
    item = {str(i): meta[asin] for asin, i in item_ids.items()}
    reviews: dict[str, list[str]] = defaultdict(list)
    for event in events:
        idx = item_ids.get(event.asin)
        if idx is not None and event.text and len(reviews[str(idx)]) < max_reviews_per_item:
            reviews[str(idx)].append(event.text)
    stats = {"users": len(inter), "items": len(item), "interactions": sum(map(len, inter.values())),
             "raw_reviews": len(events), "reviews_without_metadata": len(all_reviews) - len(events), "k_core": k}
    return {"inter": inter, "item": item, "reviews": dict(reviews), "stats": stats,
            "item_ids": sorted(item_ids, key=item_ids.get)}
