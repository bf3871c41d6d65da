"""Write bench/results.md from measured runs: gream (direct + reasoning) beside most-popular, SASRec and the paper.

Usage: python bench/collect_results.py runs/bench_cpu-scientific runs/bench_cpu-instruments --out bench/results.md
Reads each run's ``eval/metrics.json``, stage manifests (wall time, peak memory) and ``baselines/*.json``.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from gream_pipeline.eval.report import paper_rows

DIRECT = ("recall@1", "recall@5", "recall@10", "ndcg@1", "ndcg@5", "ndcg@10")
REASON = ("pass@1", "pass@5", "pass@10")
STAGES = ("data", "enrich", "index", "synth", "sft", "rl", "eval")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _row(name: str, direct: dict, reason: dict | None = None) -> str:
    reason = reason or {}
    return f"| {name} | " + " | ".join(_fmt(direct.get(k)) for k in DIRECT) + " | " + \
        " | ".join(_fmt(reason.get(k)) for k in REASON) + " |"


def dataset_section(run: Path) -> list[str]:
    metrics = _load(run / "eval" / "metrics.json") or {}
    dataset = run.name.split("-", 1)[-1]
    lines = [f"## {dataset} (`{run}`)", "", "| model | " + " | ".join(DIRECT + REASON) + " |",
             "|---" * (len(DIRECT) + len(REASON) + 1) + "|"]
    users = f"{metrics.get('direct_users', '–')} test users direct, {metrics.get('reason_users', '–')} reasoning"
    lines.append(_row(f"gream embedded default ({users})", metrics.get("direct", {}), metrics.get("reason")))
    pop = _load(run / "baselines" / "most_popular.json")
    sas = _load(run / "baselines" / "sasrec_recbole.json")
    if pop:
        lines.append(_row("most-popular (same split)", pop["test"]))
    if sas:
        lines.append(_row(f"SASRec, RecBole ({sas['epochs_run']} epochs, same split)", sas["test_gream_metrics"]))
    for name, row in (paper_rows(dataset) or {}).items():
        lines.append(_row(f"paper Table 2: {name} (Qwen3-4B, GPU)", row, row))
    ours = metrics.get("direct", {}).get("recall@10")
    for label, base in (("SASRec", sas and sas["test_gream_metrics"].get("recall@10")),
                        ("most-popular", pop and pop["test"].get("recall@10"))):
        if ours is not None and base:
            lines.append(f"\nRecall@10 ratio gream / {label}: **{ours / base:.2f}**")
    lines += ["", "| stage | wall time (s) | peak RSS gream (MiB) | peak RSS subprocesses (MiB) |", "|---|---|---|---|"]
    for stage in STAGES:
        manifest = _load(run / stage / "manifest.json")
        if manifest:
            t = manifest["timings"]
            lines.append(f"| {stage} | {t['seconds']:.0f} | {t.get('peak_rss_mb', '–')} | "
                         f"{t.get('peak_rss_children_mb', '–')} |")
    for label, res in (("most-popular", pop), ("SASRec", sas)):
        if res:
            lines.append(f"| {label} | {res['wall_time_s']:.0f} | {res.get('peak_rss_mb', '–')} | – |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/results.md"))
    args = parser.parse_args()
    lines = [f"# gream quality benchmark ({date.today().isoformat()})", "",
             "Measured on a 2-core CPU (no GPU) with `bash bench/run_quality.sh`. gream: the embedded default "
             "(tiny Qwen3 trained from scratch, offline synthesizer) under a fixed CPU budget; the paper's rows are "
             "Qwen3-4B on GPUs and are shown for reference only. Direct mode: 20-beam trie-constrained search over "
             "all items; baselines rank all items too; no history masking anywhere.", ""]
    for run in args.runs:
        lines += dataset_section(run)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
