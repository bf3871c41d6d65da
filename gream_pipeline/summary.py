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
        table.add_column("")
        for _, _, label in HEADLINE:
            table.add_column(label)
        table.add_row("gream", *(_fmt(metrics.get(mode, {}).get(key)) for mode, key, _ in HEADLINE))
        if metrics.get("most_popular"):
            table.add_row("most-popular", *(_fmt(metrics["most_popular"].get(key)) if mode == "direct" else ""
                                            for mode, key, _ in HEADLINE))
        console.print(table)
        console.print(most_popular_line(metrics))
        if metrics.get("reason_rank"):
            console.print(reason_rank_line(metrics["reason_rank"], metrics.get("reason", {})))
        console.print(f"report: {run_dir / 'eval' / 'report.md'}")
    precision = sft_precision_line(cfg, run_dir)
    if precision:
        console.print(precision)
    cut = training_cut_short(run_dir)
    if cut:
        console.print(f"[bold yellow]{cut}[/]")
    rl_path = run_dir / "rl" / "rl_summary.json"
    if rl_path.is_file():
        line, warning = rl_lines(json.loads(rl_path.read_text()))
        if line:
            console.print(line)
        if warning:
            console.print(f"[bold yellow]{warning}[/]")
    for name, files in (("index", ["report.json", "code_usage.png"]), ("sft", ["dataset/curriculum.png",
                        "model/training_loss.png"]), ("rl", ["reward_kept.png", "rl_summary.json"])):
        found = [str(run_dir / name / f) for f in files if (run_dir / name / f).is_file()]
        if found:
            console.print(f"{name}: " + ", ".join(found))


def most_popular_line(metrics: dict) -> str:
    """gream beside most-popular on the same users: Recall@10 with its 95 % interval, ratio and paired difference."""
    vs, ci = metrics.get("vs_most_popular"), metrics.get("recall@10_ci95")
    if not vs or ci is None:
        return ""
    ours = metrics.get("direct", {}).get("recall@10")
    return (f"most-popular is scored on the same {vs['users']} users. gream Recall@10 {_fmt(ours)} "
            f"(95 % CI {ci[0]:.4f}–{ci[1]:.4f}) = {vs['ratio']}× most-popular; paired difference {vs['diff']:+.4f} "
            f"(95 % CI {vs['lo']:+.4f} to {vs['hi']:+.4f})")


def reason_rank_line(block: dict, reason: dict) -> str:
    """Reasoning mode as a recommender beside direct mode on the same users, with each mode's cost."""
    direct = block.get("direct_same_users", {})
    cost = block.get("cost_per_recommendation", {})
    line = (f"reasoning mode, answers ranked, on {block['subset']}: Recall@10 {_fmt(block['reason'].get('recall@10'))} "
            f"vs direct {_fmt(direct.get('recall@10'))}; closed the thinking on its own in "
            f"{100 * reason.get('natural_close_rate', 0.0):.1f} % of samples")
    if "reason" in cost:
        line += (f"; cost per user: reasoning {cost['reason']['seconds_per_user']} s / "
                 f"{cost['reason']['generated_tokens_per_user']:.0f} generated tokens")
    if "direct" in cost:
        line += f", direct {cost['direct']['seconds_per_user']} s"
    return line


def rl_lines(summary: dict) -> tuple[str, str]:
    """The TRL run of the rl stage in one line (groups kept by the zero-variance filter, exact hits, the paired
    validation difference SRPO − before with its interval), and a warning when no group was kept (no update)."""
    run = summary.get("srpo")
    if not run:
        return "", ""
    line = (f"RL ({run.get('advantage', 'srpo').upper()}, {summary.get('mode')} prompts): {run['steps']} steps, "
            f"{run['kept_groups']} of {run['groups']} groups kept, exact-hit rate {run['exact_rate']:.3f}")
    if run.get("stopped_early"):
        stop = run["stopped_early"]
        line += (f" (stopped at step {stop['at_step']} of {run.get('max_steps', '?')}: {stop['empty_batches']} "
                 "generation batches in a row kept no group)")
    for mode, block in (summary.get("paired") or {}).items():
        diff = block.get("srpo-before", {}).get("recall@10" if mode == "direct" else "pass@10")
        if diff:
            metric = "Recall@10" if mode == "direct" else "Pass@10"
            line += (f"; validation {metric} ({mode}, {block['users']} users) "
                     f"{diff['diff']:+.4f} (95 % CI {diff['lo']:+.4f} to {diff['hi']:+.4f})")
    warning = "" if run["kept_groups"] else (
        "WARNING: every RL group had the same reward for all its rollouts, so the zero-variance filter dropped them "
        "all and the policy was not updated (the rl model equals the sft model)")
    return line, warning


def sft_precision_line(cfg: DictConfig, run_dir: Path) -> str:
    """Which precision SFT trained in (``sft.bf16=auto`` resolves per host), or '' before SFT ran."""
    counts = (read_manifest(run_dir / "sft") or {}).get("counts", {})
    if "precision" not in counts:
        return ""
    how = ": bf16 only where this host computes it natively" if str(cfg.sft.bf16) == "auto" else ", as configured"
    return f"sft: {counts.get('steps')} steps in {counts['precision']} (sft.bf16={cfg.sft.bf16}{how})"


def training_cut_short(run_dir: Path) -> str:
    """A plain warning when a wall-clock guard stopped SFT before its planned steps, else ''."""
    manifest = read_manifest(run_dir / "sft") or {}
    budget = manifest.get("counts", {}).get("time_budget") or {}
    if not budget.get("stopped_by_budget"):
        return ""
    return (f"WARNING: the SFT time guard ({budget['budget_s'] / 60:.0f} min) stopped training at step "
            f"{budget['stopped_at_step']} of {budget['max_steps']}: the metrics above are of an under-trained model "
            f"(the machine was slower than planned; re-run with a larger sft.time_budget_min)")
