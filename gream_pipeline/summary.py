"""The one-screen summary printed after ``stage=all``: stage timings, headline metrics and where the outputs are."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from gream_pipeline.artifacts import read_manifest

HEADLINE = (("direct", "recall@1", "R@1"), ("direct", "recall@5", "R@5"), ("direct", "recall@10", "R@10"),
            ("direct", "ndcg@10", "N@10"), ("reason", "pass@1", "Pass@1"), ("reason", "pass@5", "Pass@5"),
            ("reason", "pass@10", "Pass@10"), ("reason", "valid_answer_rate", "valid IDs"))


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def print_summary(cfg: DictConfig, stages: list[str], console: Console | None = None) -> None:
    console = console or Console(width=120)
    run_dir = Path(cfg.run_dir)
    timings = Table(title=f"gream run {cfg.run_name}", show_lines=False)
    for col in ("stage", "seconds", "output"):
        timings.add_column(col)
    total = 0.0
    for name in stages:
        manifest = read_manifest(run_dir / name) or {}
        seconds = manifest.get("timings", {}).get("seconds")
        total += seconds or 0.0
        timings.add_row(name, "–" if seconds is None else f"{seconds:.1f}", str(run_dir / name))
    timings.add_row("total", f"{total:.1f}", "")
    console.print(timings)
    metrics_path = run_dir / "eval" / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        table = Table(title=f"{cfg.dataset.name}, {metrics.get('split')} split: direct mode "
                            f"{metrics.get('direct_users')} users, reasoning mode {metrics.get('reason_users')} users")
        for _, _, label in HEADLINE:
            table.add_column(label)
        table.add_row(*(_fmt(metrics.get(mode, {}).get(key)) for mode, key, _ in HEADLINE))
        console.print(table)
        console.print(f"report: {run_dir / 'eval' / 'report.md'}")
    for name, files in (("index", ["report.json", "code_usage.png"]), ("sft", ["dataset/curriculum.png",
                        "model/training_loss.png"]), ("rl", ["reward_kept.png", "rl_summary.json"])):
        found = [str(run_dir / name / f) for f in files if (run_dir / name / f).is_file()]
        if found:
            console.print(f"{name}: " + ", ".join(found))
