"""A synth run SIGKILLed mid-way (twice) and resumed ends with exactly the records of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_synth import run_synth
from data_synth.store import read_records
from tests.fixtures.configs import synth_config, synth_values
from tests.fixtures.servers import FaultServer, toy_dataset

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(timeout=0.6, concurrency=3, max_invalid_retries=2, progress=False)
SERVER = dict(delay=1.2, retry_after=0.2, latency=0.03)
COMPARED = ("key", "kind", "id", "status", "reason", "text", "source", "model", "prompt_version", "parsed")


def store_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def start_cli(inputs: Path, out: Path, base_url: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "data_synth", "--items", str(inputs / "items.json"), "--train",
           str(inputs / "train.jsonl"), "--index", str(inputs / "index.json"), "--out", str(out),
           "--base-url", base_url, "--model", "fake-model"]
    fields = {k: v for k, v in synth_values(**SETTINGS).items() if k not in ("base_url", "model")}
    cmd += [f"--set={k}={json.dumps(v)}" for k, v in fields.items()]  # every field: the CLI gets the same config
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_after(proc: subprocess.Popen, store: Path, lines: int, limit: float = 60.0) -> int:
    deadline = time.monotonic() + limit
    while store_lines(store) < lines:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "synth run made no progress"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    return store_lines(store)


def comparable(out: Path) -> dict:
    records, info = read_records(out / "store.jsonl")
    assert info["duplicates"] == 0 and info["corrupt"] == 0 and info["lines"] == len(records)
    return {k: {f: r[f] for f in COMPARED} for k, r in records.items()}


def test_sigkill_midway_then_resume_equals_uninterrupted_run(tmp_path):
    items, train, index = toy_dataset(n_users=30, n_items=40, seed=2)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "items.json").write_text(json.dumps(items))
    (inputs / "index.json").write_text(json.dumps(index))
    (inputs / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in train))
    total = 30 + 40

    with FaultServer(**SERVER) as server:
        ref = run_synth(items, train, index, tmp_path / "ref", synth_config(base_url=server.base_url,
                                                                            model="fake-model", **SETTINGS))
    assert sum(j["missing"] for j in ref["jobs"].values()) == 0

    run = tmp_path / "run"
    with FaultServer(**SERVER) as server:  # one server across kills: it keeps counting arrivals per request
        first = kill_after(start_cli(inputs, run, server.base_url), run / "store.jsonl", total // 4)
        records, info = read_records(run / "store.jsonl")
        assert first < total and info["duplicates"] == 0 and info["corrupt"] <= 1
        # enrichment tasks run first: the second kill lands in the reasoning job
        second = kill_after(start_cli(inputs, run, server.base_url), run / "store.jsonl", len(items) + 8)
        assert first < second < total
        resumed = run_synth(items, train, index, run, synth_config(base_url=server.base_url, model="fake-model",
                                                                   **SETTINGS))
    cached = sum(j["cached"] for j in resumed["jobs"].values())
    assert cached >= second - 1 and sum(j["missing"] for j in resumed["jobs"].values()) == 0

    assert comparable(run) == comparable(tmp_path / "ref")
    assert len(comparable(run)) == total
    for name in ("reasoning.jsonl", "enriched_items.json", "rejected.jsonl"):
        assert (run / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
