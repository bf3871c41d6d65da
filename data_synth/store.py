"""Durable, resumable record store: an append-only JSONL file, one record per line, keyed by content hash.

Crash safety (SIGKILL, power loss):

* each record is one line written by a single ``os.write`` on an ``O_APPEND`` descriptor (looping only if the
  kernel writes partially), then ``fsync``'d (``fsync=True``, the default for LLM runs; bulk offline runs call
  ``sync()`` every N records — a kill then loses at most unsynced records *on power loss*, never on SIGKILL, since
  written data lives in the page cache);
* a kill can at worst leave a torn last line without its ``\\n``: readers ignore unparsable lines, and a writer
  truncates the torn tail before appending, so a good record is never glued onto a fragment;
* one writer at a time (``flock`` on ``<store>.lock``, released by the kernel when a writer dies); ``append``
  refuses keys already present, so a key is stored at most once. Readers keep the first record of a key.

Key = sha256 of the canonical JSON ``[prompt_version, model, payload]`` (``make_key``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator


class StoreLocked(RuntimeError):
    """Another live process holds the store's write lock."""


def make_key(prompt_version: str, model: str, payload: Any) -> str:
    """sha256 hex of ``[prompt_version, model, payload]`` in canonical JSON."""
    blob = json.dumps([prompt_version, model, payload], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def encode(record: dict) -> bytes:
    """One record → one JSON line (newlines inside strings are escaped by JSON)."""
    return (json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def iter_lines(path: Path) -> Iterator[tuple[dict | None, bytes]]:
    """Yield ``(record or None, raw line)`` for every line; ``None`` marks a torn or corrupt line."""
    with open(path, "rb") as handle:
        for raw in handle:
            record = None
            if raw.endswith(b"\n"):
                try:
                    parsed = json.loads(raw)
                    record = parsed if isinstance(parsed, dict) and "key" in parsed else None
                except ValueError:
                    record = None
            yield record, raw


def read_records(path: Path) -> tuple[dict[str, dict], dict[str, int]]:
    """Tolerant read-only load: ``(key → first record, {"lines", "corrupt", "duplicates"})``."""
    records: dict[str, dict] = {}
    info = {"lines": 0, "corrupt": 0, "duplicates": 0}
    if not Path(path).exists():
        return records, info
    for record, _ in iter_lines(path):
        info["lines"] += 1
        if record is None:
            info["corrupt"] += 1
        elif record["key"] in records:
            info["duplicates"] += 1
        else:
            records[record["key"]] = record
    return records, info


def _repair_tail(fd: int) -> int:
    """Truncate a torn last line (no trailing newline); return the number of bytes dropped."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return 0
    pos, chunk = size, 4096
    while pos > 0:
        start = max(0, pos - chunk)
        block = os.pread(fd, pos - start, start)
        if start + len(block) == size and block.endswith(b"\n"):
            return 0
        nl = block.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            os.ftruncate(fd, keep)
            os.fsync(fd)
            return size - keep
        pos = start
    os.ftruncate(fd, 0)
    os.fsync(fd)
    return size


class Store:
    """Single-writer append-only store (module docstring). Use as a context manager."""

    def __init__(self, path: Path, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self.records: dict[str, dict] = {}
        self.info: dict[str, int] = {}
        self._fd: int | None = None
        self._lock_fd: int | None = None

    def open(self) -> "Store":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(str(self.path) + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StoreLocked(f"{self.path} is being written by another process") from None
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_APPEND, 0o644)
        dropped = _repair_tail(self._fd)
        self.records, self.info = read_records(self.path)
        self.info["torn_bytes_dropped"] = dropped
        return self

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Store":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict, fsync: bool | None = None) -> bool:
        """Durably append ``record`` unless its key is stored already; return whether it was written."""
        if self._fd is None:
            raise RuntimeError("store is not open")
        key = record["key"]
        if key in self.records:
            return False
        data = memoryview(encode(record))
        while data:
            data = data[os.write(self._fd, data):]
        if self.fsync if fsync is None else fsync:
            os.fsync(self._fd)
        self.records[key] = record
        return True

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
