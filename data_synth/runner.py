"""``run_synth``: the synth stage as one library call (enrichment + reverse reasoning, online or offline).

Flow: build tasks (``jobs.py``) → drop those whose key is already in the store → generate (LLM endpoint with
retries and validation, or the offline templates) → append every final record (ok or rejected) to the store →
export ``reasoning.jsonl``, ``enriched_items.json`` and ``rejected.jsonl`` from the store.

Outcome of one task:

* ``ok`` — a completion passed validation → stored;
* ``rejected`` — ``1 + max_invalid_retries`` completions all failed validation → stored with the last reason and
  text (final for this key: re-runs do not retry it; bump the prompt version to try again);
* ``failed`` — transport error after all retries (or a non-retryable HTTP status) → reported in ``rejected.jsonl``
  and the counts, *not* stored, so the next run requests it again;
* ``skipped_budget`` — the request/token budget ran out first → not stored, requested again next run.

Store record fields: key, kind, id, status, reason, text, source (``llm:<model>`` | ``template``), model,
prompt_version, attempts (completions received), usage (prompt/completion tokens), parsed (validated fields:
``preference`` and ``rewritten_history`` for reasoning, ``description`` for enrichment).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .config import SynthConfig
from .jobs import Task, enrich_tasks, model_tag, reason_tasks
from .store import Store
from .validate import Invalid

REASONING_FILE = "reasoning.jsonl"
ENRICHED_FILE = "enriched_items.json"
REJECTED_FILE = "rejected.jsonl"


class _Tally:
    """Per-job counters of one run."""

    def __init__(self) -> None:
        self.new = Counter()  # ok / rejected / failed / skipped_budget
        self.rejected_by_reason = Counter()
        self.invalid_by_reason = Counter()  # every failed validation, including ones retried successfully
        self.failed_by_cause = Counter()
        self.failures: list[dict] = []


def _record(task: Task, cfg: SynthConfig, status: str, text: str, parsed: dict, reason: str, attempts: int,
            usage: tuple[int, int]) -> dict:
    version = cfg.reason_prompt_version if task.kind == "reason" else cfg.enrich_prompt_version
    return {"key": task.key, "kind": task.kind, "id": task.eid, "status": status, "reason": reason, "text": text,
            "source": cfg.source, "model": model_tag(cfg), "prompt_version": version, "attempts": attempts,
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}, "parsed": parsed}


def _progress(total: int, cfg: SynthConfig, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rec", disable=not cfg.progress or total == 0, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def _run_offline(tasks: Sequence[Task], store: Store, cfg: SynthConfig, tally: dict[str, _Tally]) -> None:
    with _progress(len(tasks), cfg, "synth (template)") as bar:
        for n, task in enumerate(tasks, 1):
            text = task.template()
            try:
                record = _record(task, cfg, "ok", text, task.check(text), "", 1, (0, 0))
            except Invalid as exc:  # a template bug; kept visible as a rejection
                tally[task.kind].invalid_by_reason[exc.reason] += 1
                record = _record(task, cfg, "rejected", text, {}, exc.reason, 1, (0, 0))
            store.append(record, fsync=False)
            tally[task.kind].new[record["status"]] += 1
            if record["status"] == "rejected":
                tally[task.kind].rejected_by_reason[record["reason"]] += 1
            if n % cfg.sync_every == 0:
                store.sync()
            bar.update()
    store.sync()


async def _run_task(task: Task, client, store: Store, cfg: SynthConfig, tally: _Tally) -> str:
    from .client import BudgetExceeded, TransportError

    usage, last_text, last_reason = [0, 0], "", ""
    for attempt in range(1, cfg.max_invalid_retries + 2):
        try:
            out = await client.chat(task.messages)
        except BudgetExceeded:
            return "skipped_budget"
        except TransportError as exc:
            tally.failed_by_cause[exc.cause] += 1
            tally.failures.append({"kind": task.kind, "id": task.eid, "key": task.key, "status": "failed",
                                   "reason": f"transport:{exc.cause}", "attempts": attempt - 1})
            return "failed"
        usage[0] += out.prompt_tokens
        usage[1] += out.completion_tokens
        try:
            parsed = task.check(out.text)
        except Invalid as exc:
            tally.invalid_by_reason[exc.reason] += 1
            last_text, last_reason = out.text, exc.reason
            continue
        store.append(_record(task, cfg, "ok", out.text, parsed, "", attempt, tuple(usage)), fsync=cfg.fsync)
        return "ok"
    tally.rejected_by_reason[last_reason] += 1
    store.append(_record(task, cfg, "rejected", last_text, {}, last_reason, cfg.max_invalid_retries + 1,
                         tuple(usage)), fsync=cfg.fsync)
    return "rejected"


async def _run_online(tasks: Sequence[Task], store: Store, cfg: SynthConfig, tally: dict[str, _Tally], stats) -> None:
    from .client import ChatClient

    client = ChatClient(cfg, stats)
    queue: asyncio.Queue = asyncio.Queue()
    for task in tasks:
        queue.put_nowait(task)
    bar = _progress(len(tasks), cfg, f"synth ({cfg.model})")

    async def worker() -> None:
        while True:
            try:
                task = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            status = await _run_task(task, client, store, cfg, tally[task.kind])
            tally[task.kind].new[status] += 1
            bar.update()
            bar.set_postfix(ok=sum(t.new["ok"] for t in tally.values()),
                            rej=sum(t.new["rejected"] for t in tally.values()),
                            tok=stats.tokens, cost=f"${stats.cost:.2f}", refresh=False)

    try:
        await asyncio.gather(*(worker() for _ in range(min(len(tasks), 2 * cfg.concurrency))))
    finally:
        bar.close()
        await client.aclose()


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write an export file. The pipeline calls this inside a stage's temporary output folder, which its runner
    commits atomically; the record store itself is the crash-safe state."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(lines)


def _export(out_dir: Path, store: Store, tasks: dict[str, list[Task]], failures: list[dict]) -> dict[str, str]:
    dumps = lambda obj: json.dumps(obj, ensure_ascii=False) + "\n"  # noqa: E731
    outputs, rejected = {}, []
    for kind, kind_tasks in tasks.items():
        for task in kind_tasks:
            rec = store.get(task.key)
            if rec is not None and rec["status"] == "rejected":
                rejected.append({"kind": kind, "id": task.eid, "key": task.key, "status": "rejected",
                                 "reason": rec["reason"], "source": rec["source"], "text": rec["text"][:4000]})
    if "reason" in tasks:
        rows = []
        for task in tasks["reason"]:
            rec = store.get(task.key)
            if rec is not None and rec["status"] == "ok":
                rows.append(dumps({**task.context, "text": rec["text"], "preference": rec["parsed"]["preference"],
                                   "rewritten_history": rec["parsed"]["rewritten_history"], "source": rec["source"],
                                   "key": task.key}))
        _write_lines(out_dir / REASONING_FILE, rows)
        outputs["reasoning"] = REASONING_FILE
    if "enrich" in tasks:
        enriched = {t.eid: store.get(t.key)["parsed"]["description"] for t in tasks["enrich"]
                    if store.get(t.key) is not None and store.get(t.key)["status"] == "ok"}
        _write_lines(out_dir / ENRICHED_FILE, [json.dumps(enriched, ensure_ascii=False, indent=1), "\n"])
        outputs["enriched_items"] = ENRICHED_FILE
    _write_lines(out_dir / REJECTED_FILE, [dumps(r) for r in rejected + failures])
    outputs["rejected"] = REJECTED_FILE
    return outputs


def _job_summary(kind_tasks: list[Task], store: Store, cached: int, tally: _Tally, skipped: dict) -> dict:
    final = Counter(store.get(t.key)["status"] if t.key in store else "missing" for t in kind_tasks)
    reasons = Counter(store.get(t.key)["reason"] for t in kind_tasks
                      if t.key in store and store.get(t.key)["status"] == "rejected")
    return {"tasks": len(kind_tasks), "cached": cached, "ok": final["ok"], "rejected": final["rejected"],
            "missing": final["missing"], "rejected_by_reason": dict(reasons), "new": dict(tally.new),
            "new_rejected_by_reason": dict(tally.rejected_by_reason),
            "invalid_outputs_by_reason": dict(tally.invalid_by_reason),
            "failed_by_cause": dict(tally.failed_by_cause), "skipped": dict(skipped)}


def format_summary(summary: dict) -> str:
    """Human-readable end-of-run report (counts, rejections by reason, retries by cause, tokens, throughput)."""
    lines = [f"synth [{summary['mode']}, {summary['source']}] {summary['seconds']:.1f}s, "
             f"{summary['records_per_s']:.1f} records/s"]
    for kind, job in summary["jobs"].items():
        why = f" {job['rejected_by_reason']}" if job["rejected_by_reason"] else ""
        lines.append(f"  {kind}: {job['ok']} ok, {job['rejected']} rejected{why}, "
                     f"{job['missing']} missing (cached {job['cached']}, new {job['new']}, "
                     f"failed {job['failed_by_cause'] or 0}, skipped {job['skipped'] or 0})")
    if summary["mode"] == "online":
        tok = summary["tokens"]
        lines.append(f"  requests {summary['requests']}, retries {summary['retries_by_cause'] or 0}, tokens "
                     f"{tok['prompt']}+{tok['completion']}, cost ${summary['cost_usd']:.4f}")
    return "\n".join(lines)


def run_synth(items: Mapping[str, Mapping], train_examples: Sequence[Mapping], index: Mapping[str, Sequence[str]],
              out_dir: Path, cfg: SynthConfig) -> dict:
    """Run the configured synth jobs into ``out_dir``; return counts, rejections and throughput for the manifest.

    ``items``: ``{"<item id>": {"title","description","brand","categories"}}``; ``train_examples``:
    ``[{"user","history":[int],"target":int}]``; ``index``: ``{"<item id>": [ID tokens]}`` (docs/CONVENTIONS.md).
    Outputs in ``out_dir``: the store (``cfg.store_name``), ``reasoning.jsonl`` (one row per training user with an
    ok record), ``enriched_items.json`` (when the enrich job runs), ``rejected.jsonl``.
    """
    from .client import Stats

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    skipped: dict[str, dict] = {kind: {} for kind in cfg.jobs}
    tasks: dict[str, list[Task]] = {}
    if "enrich" in cfg.jobs:
        tasks["enrich"] = enrich_tasks(items, cfg, skipped["enrich"])
    if "reason" in cfg.jobs:
        tasks["reason"] = reason_tasks(items, train_examples, index, cfg, skipped["reason"])
    tally = {kind: _Tally() for kind in tasks}
    stats = Stats()
    store_path = Path(cfg.store_path) if cfg.store_path else out_dir / cfg.store_name
    with Store(store_path, fsync=cfg.fsync) as store:
        store_info = {f"{k}_at_open": v for k, v in store.info.items()}
        seen, pending, cached = set(), [], Counter()
        for kind, kind_tasks in tasks.items():
            for task in kind_tasks:
                if task.key in store:
                    cached[kind] += 1
                elif task.key not in seen:
                    seen.add(task.key)
                    pending.append(task)
        gen_started = time.perf_counter()
        if cfg.is_offline:
            _run_offline(pending, store, cfg, tally)
        else:
            asyncio.run(_run_online(pending, store, cfg, tally, stats))
        gen_seconds = time.perf_counter() - gen_started
        failures = [f for t in tally.values() for f in t.failures]
        outputs = _export(out_dir, store, tasks, failures)
        jobs = {kind: _job_summary(kind_tasks, store, cached[kind], tally[kind], skipped[kind])
                for kind, kind_tasks in tasks.items()}
        store_records = len(store)
    produced = sum(sum(t.new[s] for s in ("ok", "rejected")) for t in tally.values())
    return {
        "mode": "offline" if cfg.is_offline else "online", "source": cfg.source, "model": model_tag(cfg),
        "prompt_versions": {"reason": cfg.reason_prompt_version, "enrich": cfg.enrich_prompt_version},
        "jobs": jobs, "store": {"file": str(store_path), "records": store_records, **store_info},
        "requests": stats.requests, "responses": stats.responses, "retries_by_cause": dict(stats.retries),
        "tokens": {"prompt": stats.prompt_tokens, "completion": stats.completion_tokens, "total": stats.tokens,
                   "estimated_responses": stats.estimated_usage},
        "cost_usd": round(stats.cost, 6), "seconds": round(time.perf_counter() - started, 3),
        "generation_seconds": round(gen_seconds, 3), "records_per_s": round(produced / max(gen_seconds, 1e-9), 2),
        "outputs": outputs,
    }
