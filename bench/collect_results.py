"""Write bench/results.md from measured runs: gream (direct + reasoning) beside most-popular, SASRec and the paper.

Usage: python bench/collect_results.py runs/bench_cpu-scientific runs/bench_cpu-instruments \
           [--tune runs/tune-sentence runs/tune-collab] --out bench/results.md
Reads each run's ``eval/metrics.json``, stage manifests and summaries (wall time, peak memory, SFT steps) and
``baselines/*.json``. When gream's direct mode covered only the first N test users, the baselines are shown on those
same N users (``test_first_n``) beside their full-test numbers, and the ratios use the same-users numbers.
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


def _same_users(result: dict | None, full_key: str, n_users: int | None) -> dict | None:
    """A baseline's metrics on the users gream evaluated: ``test_first_n`` when it covers them, else full test."""
    if not result:
        return None
    sub = result.get("test_first_n")
    if sub and n_users is not None and sub.get("n") == n_users:
        return sub
    return result[full_key]


def sft_line(run: Path) -> str:
    summary = _load(run / "sft" / "summary.json") or {}
    budget, loss = summary.get("time_budget") or {}, summary.get("loss") or {}
    if not summary:
        return ""
    ex = summary.get("examples", {})
    steps = budget.get("global_step", loss.get("total_steps"))
    text = (f"SFT: {summary.get('model', {}).get('params', 0) / 1e6:.2f}M-param model; examples per epoch "
            f"{', '.join(f'{k} {v}' for k, v in ex.items())}, reason {summary.get('reason_examples')}; "
            f"global batch {summary.get('global_batch')}; {steps} of {summary.get('steps')} planned steps")
    if budget:
        text += (f" in {budget['train_s'] / 60:.1f} min (budget {budget['budget_s'] / 60:.0f} min, "
                 f"{'stopped by the budget' if budget['stopped_by_budget'] else 'finished within it'})")
    if loss:
        text += f"; loss {loss['mean_first_tenth']:.2f} → {loss['mean_last_tenth']:.2f} (first/last tenth)"
    return text + "."


def rl_line(rl: dict) -> str:
    """SRPO steps, reward, exact-hit rate, filtered groups and the validation Recall@10 before → after."""
    srpo = rl.get("srpo", {})
    before = rl.get("valid_before", {}).get("direct", {}).get("recall@10")
    after = rl.get("valid_after", {}).get("direct", {}).get("recall@10")
    return (f"RL (SRPO, {rl.get('backend')}): {srpo.get('steps')} steps × {srpo.get('rollouts', 0) // max(1, srpo.get('steps') or 1)} "
            f"rollouts, reward mean {_fmt(srpo.get('reward_mean'))}, exact-hit rate {_fmt(srpo.get('exact_rate'))}, "
            f"zero-variance groups dropped {_fmt(srpo.get('filtered_group_frac'))}; validation Recall@10 "
            f"{_fmt(before)} → {_fmt(after)}.")


def dataset_section(run: Path) -> list[str]:
    metrics = _load(run / "eval" / "metrics.json") or {}
    dataset = run.name.split("-", 1)[-1]
    n_direct = metrics.get("direct_users")
    pop = _load(run / "baselines" / "most_popular.json")
    sas = _load(run / "baselines" / "sasrec_recbole.json")
    n_test = pop and pop.get("n_test")
    lines = [f"### {dataset} (`{run}`)", "", "| model | " + " | ".join(DIRECT + REASON) + " |",
             "|---" * (len(DIRECT) + len(REASON) + 1) + "|"]
    users = f"{n_direct if n_direct is not None else '–'} test users direct, {metrics.get('reason_users', '–')} reasoning"
    lines.append(_row(f"gream embedded default ({users})", metrics.get("direct", {}), metrics.get("reason")))
    subset = n_direct is not None and n_test is not None and n_direct < n_test
    pop_same, sas_same = _same_users(pop, "test", n_direct), _same_users(sas, "test_gream_metrics", n_direct)
    if pop:
        if subset:
            lines.append(_row(f"most-popular (same {n_direct} users)", pop_same))
        lines.append(_row(f"most-popular (all {n_test} test users)", pop["test"]))
    if sas:
        label = f"SASRec, RecBole ({sas['epochs_run']} epochs, best {sas['best_epoch']}, {sas['stopped_by']})"
        grid = sas.get("grid")
        if grid:
            done = sum(c["status"] == "done" for c in grid["configs"])
            label = (f"SASRec, RecBole ({grid['selected']}: best of {done}/{len(grid['configs'])} grid configs on "
                     f"valid NDCG@10; {sas['epochs_run']} epochs, best {sas['best_epoch']}, {sas['stopped_by']})")
        if subset:
            lines.append(_row(f"{label}, same {n_direct} users", sas_same))
        lines.append(_row(f"{label}, all test users", sas["test_gream_metrics"]))
    for name, row in (paper_rows(dataset) or {}).items():
        lines.append(_row(f"paper Table 2: {name} (Qwen3-4B, GPU)", row, row))
    ours = metrics.get("direct", {}).get("recall@10")
    lines.append("")
    for label, base in (("SASRec", sas_same), ("most-popular", pop_same)):
        if ours is not None and base and base.get("recall@10"):
            lines.append(f"Recall@10 ratio gream / {label} (same users): **{ours / base['recall@10']:.2f}** "
                         f"({ours:.4f} / {base['recall@10']:.4f})  ")
    paper = (paper_rows(dataset) or {}).get("GREAM-Align")
    if ours is not None and paper:
        lines.append(f"Recall@10 ratio gream / paper GREAM-Align: **{ours / paper['recall@10']:.2f}**  ")
    rl = _load(run / "rl" / "rl_summary.json")
    lines += ["", sft_line(run)]
    if rl:
        lines.append(rl_line(rl))
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
    if sas and sas.get("grid"):
        lines += ["", "SASRec grid (selected on validation NDCG@10 only):", "",
                  "| config | status | valid NDCG@10 | test Recall@10 | epochs (best) | stopped by | wall time (s) |",
                  "|---|---|---|---|---|---|---|"]
        for c in sas["grid"]["configs"]:
            lines.append(f"| h{c['hidden']} dropout {c['dropout']:g} lr {c['lr']:g} | {c['status']} | "
                         f"{_fmt(c.get('valid_ndcg@10'))} | {_fmt(c.get('test_recall@10'))} | "
                         f"{c.get('epochs_run', '–')} ({c.get('best_epoch', '–')}) | {c.get('stopped_by', '–')} | "
                         f"{c.get('wall_time_s', '–')} |")
    return lines + [""]


def tune_section(runs: list[Path]) -> list[str]:
    lines = ["### Tuning runs (Scientific, validation split, direct mode)", "",
             "Short lanes run side by side with `bench/tune_lane.sh` (same budget and noise; one thread each).", "",
             "| run | index collision rate | SFT steps | recall@5 | recall@10 | ndcg@10 | users |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        metrics = _load(run / "eval" / "metrics.json") or {}
        index = _load(run / "index" / "report.json") or {}
        budget = (_load(run / "sft" / "summary.json") or {}).get("time_budget") or {}
        d = metrics.get("direct", {})
        lines.append(f"| `{run.name}` | {_fmt(index.get('collision_rate_before_slot'))} | "
                     f"{budget.get('global_step', '–')} | {_fmt(d.get('recall@5'))} | {_fmt(d.get('recall@10'))} | "
                     f"{_fmt(d.get('ndcg@10'))} | {metrics.get('direct_users', '–')} |")
    return lines + [""]


def dataset_json(run: Path) -> dict:
    """One dataset's entry of ``bench/results.json``: gream, SASRec and most-popular on the same users, pipeline
    minutes (data → eval) and SFT targets supervised per second."""
    metrics = _load(run / "eval" / "metrics.json") or {}
    n = metrics.get("direct_users")
    pop, sas = _load(run / "baselines" / "most_popular.json"), _load(run / "baselines" / "sasrec_recbole.json")
    timings = [(_load(run / stage / "manifest.json") or {}).get("timings", {}) for stage in STAGES]
    seconds = sum(t.get("seconds", 0.0) for t in timings)
    cpu = [t["cpu_seconds"] for t in timings if "cpu_seconds" in t]
    sft = _load(run / "sft" / "manifest.json") or {}
    targets = sum((sft.get("counts", {}).get("targets") or {}).values())
    steps = sft.get("counts", {}).get("steps") or 0
    epochs = ((sft.get("config") or {}).get("sft") or {}).get("epochs") or 0
    sft_s = sft.get("timings", {}).get("seconds")
    return {"users": n, "gream": metrics.get("direct", {}),
            "sasrec": _same_users(sas, "test_gream_metrics", n) if sas else None,
            "most_popular": metrics.get("most_popular") or (_same_users(pop, "test", n) if pop else None),
            "gream_pipeline_minutes": round(seconds / 60, 1),
            "gream_pipeline_cpu_minutes": round(sum(cpu) / 60, 1) if len(cpu) == len(timings) else None,
            "sft_targets_per_s": round(targets * epochs / sft_s, 1) if sft_s and steps and epochs else None}


def write_json(runs: list[Path], path: Path) -> None:
    """Rewrite the ``datasets`` entries of ``path`` for ``runs``, keeping every other top-level key."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault("datasets", {})
    for run in runs:
        data["datasets"][run.name.split("-", 1)[-1]] = dataset_json(run)
    path.write_text(json.dumps(data, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--tune", nargs="*", type=Path, default=[])
    parser.add_argument("--notes", type=Path, help="markdown appended verbatim (analysis written by a person)")
    parser.add_argument("--out", type=Path, default=Path("bench/results.md"))
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    write_json(args.runs, args.json)
    lines = [f"## Quality benchmark ({date.today().isoformat()}): direct mode on every test user", "",
             "Measured on a 2-core CPU (no GPU) with `bash bench/run_quality.sh` (`make bench-quality`). gream: the "
             "embedded default (tiny Qwen3 trained from scratch, collaborative IDs, offline synthesizer), SFT bounded "
             "by steps; the paper's rows are Qwen3-4B on GPUs and are shown for reference only. Direct mode: 20-beam "
             "trie-constrained search over all items; baselines rank all items too; no history masking anywhere. "
             "SASRec: the best grid configuration on validation NDCG@10, each trained to early stopping.", ""]
    for run in args.runs:
        lines += dataset_section(run)
    if args.tune:
        lines += tune_section(args.tune)
    if args.notes and args.notes.is_file():
        lines += [args.notes.read_text()]
    replace_section(args.out, "\n".join(lines))
    print("\n".join(lines))


BEGIN, END = "<!-- quality benchmark: generated by bench/collect_results.py -->", "<!-- end of quality benchmark -->"


def replace_section(path: Path, text: str) -> None:
    """Write ``text`` between the generated-section markers of ``path`` (appended when absent), keeping the
    hand-written sections around it."""
    old = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block + "\n"
    path.write_text(new)


if __name__ == "__main__":
    main()
