"""Crash-safe JSONL store (data_synth/store.py): torn tails, duplicates, single writer, keys."""

import json
import os
import subprocess
import sys

import pytest

from data_synth.store import Store, StoreLocked, encode, make_key, read_records


def rec(i: int, text: str = "x") -> dict:
    return {"key": f"k{i}", "kind": "reason", "id": str(i), "status": "ok", "text": text}


def test_append_reopen_and_refuse_duplicates(tmp_path):
    path = tmp_path / "store.jsonl"
    with Store(path) as store:
        assert store.append(rec(1, "line\nbreak"))
        assert store.append(rec(2))
        assert not store.append(rec(1, "other"))
    with Store(path) as store:
        assert len(store) == 2 and store.get("k1")["text"] == "line\nbreak"
        assert not store.append(rec(2, "again"))
    assert len(path.read_bytes().splitlines()) == 2


def test_torn_tail_is_ignored_by_readers_and_truncated_by_writer(tmp_path):
    path = tmp_path / "store.jsonl"
    with Store(path) as store:
        store.append(rec(1))
        store.append(rec(2))
    good = path.read_bytes()
    torn = encode(rec(3, "y" * 100))[:57]  # what a kill during a write could leave behind
    with open(path, "ab") as handle:
        handle.write(torn)
    records, info = read_records(path)
    assert sorted(records) == ["k1", "k2"] and info["corrupt"] == 1
    with Store(path) as store:
        assert store.info["torn_bytes_dropped"] == len(torn)
        assert path.read_bytes() == good
        store.append(rec(3))
    records, info = read_records(path)
    assert sorted(records) == ["k1", "k2", "k3"] and info == {"lines": 3, "corrupt": 0, "duplicates": 0}


def test_torn_tail_without_any_newline_and_readers_keep_first_duplicate(tmp_path):
    path = tmp_path / "store.jsonl"
    path.write_bytes(b'{"key": "k1", "te')
    with Store(path) as store:
        assert len(store) == 0
        store.append(rec(1))
    assert read_records(path)[0]["k1"]["text"] == "x"
    with open(path, "ab") as handle:  # a foreign writer's duplicate: readers keep the first record
        handle.write(encode(rec(1, "second")))
    records, info = read_records(path)
    assert records["k1"]["text"] == "x" and info["duplicates"] == 1


def test_single_writer_lock_released_when_writer_is_killed(tmp_path):
    path = tmp_path / "store.jsonl"
    code = (f"import time; from data_synth.store import Store; s = Store({str(path)!r}).open(); "
            "print('locked', flush=True); time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked):
            Store(path).open()
    finally:
        proc.kill()
        proc.wait()
    with Store(path) as store:  # the kernel released the dead writer's lock
        assert store.append(rec(1))


def test_make_key_covers_version_model_and_payload():
    base = make_key("reason-v1", "m", {"id": "1", "messages": [{"role": "user", "content": "a"}]})
    assert base == make_key("reason-v1", "m", {"messages": [{"content": "a", "role": "user"}], "id": "1"})
    others = {make_key("reason-v2", "m", {"id": "1", "messages": [{"role": "user", "content": "a"}]}),
              make_key("reason-v1", "m2", {"id": "1", "messages": [{"role": "user", "content": "a"}]}),
              make_key("reason-v1", "m", {"id": "1", "messages": [{"role": "user", "content": "b"}]})}
    assert base not in others and len(others) == 3 and len(base) == 64
    assert json.loads(encode({"key": base, "t": "ü\n"}))["t"] == "ü\n"
