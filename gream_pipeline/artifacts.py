"""Stage artifacts: atomic writes, content hashes and the per-stage ``manifest.json``.

Every stage writes into a fresh temporary directory next to its final one and renames it into place only after
it finished, so an interrupted or failed stage leaves nothing half-written. The manifest records the hash of the
resolved stage config, the hashes of the input files, counts and timings; a re-run whose config and inputs hash
the same is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of a JSON-serialisable object in canonical form (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def hash_inputs(paths: Iterable[Path]) -> dict[str, str]:
    """Map each input path (as given) to its sha256; directories hash every file below them."""
    hashes: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            hashes[str(file)] = sha256_file(file)
    return hashes


def write_json(path: Path, obj: Any, indent: int | None = 2) -> None:
    """Write JSON to ``path``. Stage outputs are made atomic by :class:`StageDir`, so this is a plain write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    with open(path) as handle:
        return json.load(handle)


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write rows as JSON lines (inside a stage's temporary directory); returns the row count."""
    count = 0
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_manifest(stage_dir: Path) -> dict | None:
    """The stage's manifest, or None when the stage has not completed."""
    path = Path(stage_dir) / MANIFEST
    return read_json(path) if path.is_file() else None


class StageDir:
    """A stage's output directory, built in a temporary sibling and committed by rename.

    Use as a context manager: ``with StageDir(final) as tmp: ...write into tmp...``. On success the previous
    output (if any) is replaced; on error the previous output is kept and the temporary directory is removed, or,
    with ``failed`` given and something written, moved there as evidence (``self.kept``).
    The temporary name carries the owner's pid so :func:`remove_stale_temp_dirs` can tell a killed run's leftovers.
    """

    def __init__(self, final: Path, failed: Path | None = None):
        self.final = Path(final)
        self.failed = failed
        self.tmp: Path | None = None
        self.kept: Path | None = None

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-{os.getpid()}-", dir=self.final.parent))
        self.tmp.chmod(0o755)  # mkdtemp's 0700 would make the committed stage folder private, unlike its files
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.tmp is not None
        if exc_type is not None:
            if self.failed is not None and any(self.tmp.iterdir()):
                shutil.rmtree(self.failed, ignore_errors=True)
                os.replace(self.tmp, self.failed)
                self.kept = self.failed
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}-")
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if self.failed is not None:
            shutil.rmtree(self.failed, ignore_errors=True)
        return False


_TEMP_NAME = re.compile(r"^\..+\.(?:tmp|old)-(\d+)-")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_dirs(folder: Path) -> list[Path]:
    """Remove the temporary stage directories in ``folder`` whose owning process is gone (a killed run's);
    a live run's are kept. Returns what was removed."""
    removed = []
    if not Path(folder).is_dir():
        return removed
    for entry in Path(folder).iterdir():
        match = _TEMP_NAME.match(entry.name)
        if match and entry.is_dir() and not _process_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
