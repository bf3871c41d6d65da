"""Shared fixtures: real dataset locations, a CLI runner and small LC-Rec datasets written by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("GREAM_DATA_ROOT", REPO.parent / "shared" / "datasets")).resolve()


def require_dataset(name: str) -> Path:
    folder = DATA_ROOT / name
    if not (folder / f"{name}.inter.json").is_file():
        pytest.skip(f"real dataset {folder} not available")
    return folder


@pytest.fixture
def scientific() -> Path:
    return require_dataset("Scientific")


@pytest.fixture
def instruments() -> Path:
    return require_dataset("Instruments")


def run_gream(*overrides: str, runs_dir: Path, check: bool = True, timeout: int = 600,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI (``python -m gream_pipeline``) in a subprocess with ``runs_dir`` as output root.

    ``env`` adds to (or overrides) the inherited environment.
    """
    cmd = [sys.executable, "-m", "gream_pipeline", f"runs_dir={runs_dir}", *overrides]
    env = {**os.environ, "GREAM_DATA_ROOT": str(DATA_ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"gream failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_lcrec(folder: Path, name: str, inter: dict, items: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter.json").write_text(json.dumps(inter))
    if items is not None:
        (folder / f"{name}.item.json").write_text(json.dumps(items))
    return folder


def subset_lcrec(source: Path, name: str, dest: Path, num_users: int) -> Path:
    """A small real dataset: the first ``num_users`` users of ``source`` with items renumbered 0..I-1."""
    inter = json.loads((source / f"{name}.inter.json").read_text())
    item_file = source / f"{name}.item.json"
    items = json.loads(item_file.read_text()) if item_file.is_file() else None
    users = list(inter)[:num_users]
    remap: dict[int, int] = {}
    for u in users:
        for i in inter[u]:
            remap.setdefault(i, len(remap))
    sub_inter = {u: [remap[i] for i in inter[u]] for u in users}
    sub_items = {str(new): items[str(old)] for old, new in remap.items()} if items else None
    return write_lcrec(dest, name, sub_inter, sub_items)
