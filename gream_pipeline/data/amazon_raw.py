"""Preprocess raw Amazon review dumps (2014 and 2018 releases) into LC-Rec format.

Input: a reviews/ratings file (JSON lines, optionally gzipped; 2014 ``reviews_<Cat>_5.json.gz`` or 2018
``<Cat>.json.gz`` with ``reviewerID``, ``asin``, ``unixReviewTime``) and a metadata file (``meta_<Cat>.json.gz``;
2014 lines are Python dict literals, 2018 lines JSON). Steps: keep interactions whose item has a non-empty title,
drop repeated (user, item) pairs (first review wins), apply iterative k-core filtering (default 5) on users and
items, order each user's items by time (ties keep file order), and renumber users and items ``0..N-1`` (items by
first appearance in the time-ordered stream). Output matches ``../shared/datasets`` (see DESIGN.md §4).
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from gream_pipeline.errors import DataError

_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Review:
    user: str
    asin: str
    time: int
    order: int
    text: str


def _open(path: Path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) from JSON lines or Python-literal lines (2014 metadata)."""
    with _open(path) as handle:
        for lineno, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                try:
                    record = ast.literal_eval(line)
                except (ValueError, SyntaxError):
                    raise DataError(f"{path}: line {lineno}: malformed record (neither JSON nor a dict literal)") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {lineno}: expected an object")
            yield lineno, record


def clean_text(value: object) -> str:
    """Flatten lists, unescape HTML, strip tags and collapse whitespace."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        parts = [clean_text(v) for v in value]
        return " ".join(p for p in parts if p)
    text = _TAG.sub(" ", html.unescape(str(value)))
    return " ".join(text.split())


def _categories(record: dict) -> str:
    cats = record.get("category") or record.get("categories") or []
    if cats and isinstance(cats[0], (list, tuple)):  # 2014: list of category paths
        cats = cats[0]
    return ", ".join(clean_text(c) for c in cats if clean_text(c))


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """asin → {title, description, brand, categories} for items with a non-empty title."""
    meta: dict[str, dict[str, str]] = {}
    for lineno, record in tqdm(_records(path), desc="metadata", unit=" lines"):
        asin = record.get("asin")
        if not asin:
            raise DataError(f"{path}: line {lineno}: missing 'asin'")
        title = clean_text(record.get("title"))
        if title:
            meta[asin] = {
                "title": title,
                "description": clean_text(record.get("description")),
                "brand": clean_text(record.get("brand")),
                "categories": _categories(record),
            }
    return meta


def read_reviews(path: Path) -> list[Review]:
    """All (user, item, time) events; missing fields are errors naming the line."""
    reviews = []
    for lineno, record in tqdm(_records(path), desc="reviews", unit=" lines"):
        try:
            user, asin, time = record["reviewerID"], record["asin"], int(record["unixReviewTime"])
        except KeyError as err:
            raise DataError(f"{path}: line {lineno}: missing field {err.args[0]!r}") from None
        except (TypeError, ValueError):
            raise DataError(f"{path}: line {lineno}: 'unixReviewTime' {record.get('unixReviewTime')!r} is not an integer") from None
        text = clean_text(record.get("reviewText"))
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
    events = sorted((r for r in read_reviews(reviews_path) if r.asin in meta), key=lambda r: (r.time, r.order))
    first: dict[tuple[str, str], Review] = {}
    for event in events:
        first.setdefault((event.user, event.asin), event)
    kept = k_core(list(first), k)
    if not kept:
        raise DataError(f"{reviews_path}: no interactions survive {k}-core filtering")
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
             "raw_reviews": len(events), "k_core": k}
    return {"inter": inter, "item": item, "reviews": dict(reviews), "stats": stats}
