"""Online synth against a real fault-injecting OpenAI-compatible HTTP server on 127.0.0.1 (tests/fixtures/servers)."""

import json
import time
from collections import Counter

from data_synth import run_synth
from data_synth.jobs import enrich_tasks, reason_tasks
from data_synth.store import read_records
from tests.fixtures.configs import synth_config
from tests.fixtures.servers import PLANS, FaultServer, content_hash, toy_dataset

FAST = dict(model="fake-model", progress=False, concurrency=4)


def plans_of(server, items, train, index, cfg) -> dict[str, str]:
    """Store key → the server's fault plan for that task (plans depend on the request content only)."""
    tasks = enrich_tasks(items, cfg, {}) + reason_tasks(items, train, index, cfg, {})
    return {t.key: server.plan_of(content_hash(t.messages)) for t in tasks}


def test_every_task_completes_or_is_rejected_under_injected_faults(tmp_path):
    items, train, index = toy_dataset(n_users=24, n_items=36, seed=1)
    with FaultServer(delay=3.0, retry_after=0.3) as server:
        cfg = synth_config(base_url=server.base_url, timeout=1.5, max_invalid_retries=2, **FAST)
        summary = run_synth(items, train, index, tmp_path, cfg)
        plan = plans_of(server, items, train, index, cfg)
        served = Counter(server.actions)
    n = Counter(plan.values())
    assert all(n[p] > 0 for p in PLANS), n  # every fault kind was exercised
    records, info = read_records(tmp_path / "store.jsonl")
    assert info == {"lines": len(plan), "corrupt": 0, "duplicates": 0} and set(records) == set(plan)
    for key, p in plan.items():
        assert records[key]["status"] == ("rejected" if p == "poison" else "ok"), p
        assert records[key]["source"] == "llm:fake-model"
    jobs = summary["jobs"]
    assert sum(j["ok"] for j in jobs.values()) == len(plan) - n["poison"]
    assert sum(j["rejected"] for j in jobs.values()) == n["poison"]
    assert sum(j["missing"] for j in jobs.values()) == 0
    assert summary["retries_by_cause"] == {"timeout": n["delay"], "429": n["429"] + n["mixed"],
                                           "5xx": 2 * n["500"], "malformed": n["malformed"] + n["mixed"]}
    invalid = sum(sum(j["invalid_outputs_by_reason"].values()) for j in jobs.values())
    assert invalid == n["invalid_once"] + n["mixed"] + 3 * n["poison"] == served["invalid"]
    assert summary["requests"] == sum(served.values())
    assert summary["tokens"]["total"] > 0
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == n["poison"] and all(r["status"] == "rejected" and r["reason"] for r in rejected)
    ok_users = {r["id"] for r in records.values() if r["kind"] == "reason" and r["status"] == "ok"}
    assert [json.loads(l)["user"] for l in (tmp_path / "reasoning.jsonl").read_text().splitlines()] == \
        [u for u in dict.fromkeys(e["user"] for e in train) if u in ok_users]
    # a re-run requests nothing: everything is stored (ok or rejected)
    with FaultServer(weights={"ok": 1}) as server:
        again = run_synth(items, train, index, tmp_path, synth_config(base_url=server.base_url, **FAST))
    assert again["requests"] == 0 and read_records(tmp_path / "store.jsonl")[1]["lines"] == len(plan)


def test_retry_after_is_honoured(tmp_path):
    items, train, index = toy_dataset(n_users=2, n_items=10)
    with FaultServer(weights={"429": 1}, retry_after=1.0) as server:
        cfg = synth_config(base_url=server.base_url, jobs=["enrich"], max_items=1, **FAST)
        start = time.perf_counter()
        summary = run_synth(items, train, index, tmp_path, cfg)
        elapsed = time.perf_counter() - start
    assert summary["retries_by_cause"] == {"429": 1} and summary["jobs"]["enrich"]["ok"] == 1
    assert 1.0 <= elapsed < 5.0  # waited for Retry-After, not the 0.02 s backoff


def test_exhausted_retries_are_reported_not_stored_then_resumed(tmp_path):
    items, train, index = toy_dataset(n_users=5, n_items=12)
    with FaultServer(weights={"500": 1}) as server:  # 500, 500, then ok
        cfg = synth_config(base_url=server.base_url, jobs=["reason"], max_retries=1, **FAST)
        first = run_synth(items, train, index, tmp_path, cfg)
        failed = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
        assert first["jobs"]["reason"]["failed_by_cause"] == {"5xx": 5} and first["jobs"]["reason"]["missing"] == 5
        assert [r["reason"] for r in failed] == ["transport:5xx"] * 5
        assert read_records(tmp_path / "store.jsonl")[0] == {}
        second = run_synth(items, train, index, tmp_path, cfg)
    assert second["jobs"]["reason"]["ok"] == 5 and second["requests"] == 5
    assert (tmp_path / "rejected.jsonl").read_text() == ""


def test_request_budget_stops_and_resume_fills_the_rest(tmp_path, monkeypatch):
    items, train, index = toy_dataset(n_users=8, n_items=20)
    monkeypatch.setenv("GREAM_TEST_KEY", "sk-test-secret-0123456789")
    with FaultServer(weights={"ok": 1}) as server:
        cfg = dict(base_url=server.base_url, jobs=["reason"], api_key_env="GREAM_TEST_KEY", **FAST)
        first = run_synth(items, train, index, tmp_path, synth_config(max_requests=3, **cfg))
        assert first["requests"] == 3 and first["jobs"]["reason"]["new"] == {"ok": 3, "skipped_budget": 5}
        assert first["jobs"]["reason"]["missing"] == 5
        second = run_synth(items, train, index, tmp_path, synth_config(**cfg))
        assert second["requests"] == 5 and second["jobs"]["reason"]["ok"] == 8
        tokens = run_synth(items, train, index, tmp_path / "t", synth_config(max_tokens=1,
                                                                            **{**cfg, "concurrency": 1}))
        assert tokens["requests"] == 1 and tokens["jobs"]["reason"]["new"]["skipped_budget"] == 7
        assert set(server.authorizations) == {"Bearer sk-test-secret-0123456789"}
    blobs = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()] + [json.dumps([first, second, tokens])]
    assert not any("sk-test-secret" in blob for blob in blobs)  # the key is sent, never stored


def test_request_budget_also_stops_the_sdk_retries(tmp_path):
    items, train, index = toy_dataset(n_users=1, n_items=10)
    with FaultServer(weights={"500": 1}) as server:  # 500, 500, then ok
        cfg = synth_config(base_url=server.base_url, jobs=["reason"], max_requests=2, **FAST)
        summary = run_synth(items, train, index, tmp_path, cfg)
        served = sum(server.actions.values())
    assert summary["requests"] == served == 2 and summary["retries_by_cause"] == {"5xx": 2}
    assert summary["jobs"]["reason"]["new"] == {"skipped_budget": 1} and summary["jobs"]["reason"]["missing"] == 1


def test_unreachable_endpoint_and_wrong_path_fail_fast_and_are_reported(tmp_path):
    import socket

    items, train, index = toy_dataset(n_users=3, n_items=12)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = synth_config(base_url=f"http://127.0.0.1:{port}/v1", jobs=["reason"], max_retries=1, **FAST)
    down = run_synth(items, train, index, tmp_path / "down", cfg)
    assert down["jobs"]["reason"]["failed_by_cause"] == {"connection": 3} and down["retries_by_cause"] == {
        "connection": 3}
    with FaultServer(weights={"ok": 1}) as server:
        cfg = synth_config(base_url=server.base_url.removesuffix("/v1"), jobs=["reason"], **FAST)
        wrong = run_synth(items, train, index, tmp_path / "404", cfg)
    assert wrong["jobs"]["reason"]["failed_by_cause"] == {"http_404": 3} and wrong["requests"] == 3
