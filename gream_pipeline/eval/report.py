"""Markdown report and PNG plots for an evaluation run, beside the paper's published numbers (Table 2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import metrics as M

_DIRECT = ("recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10")
_REASON = ("pass@1", "pass@5", "pass@10")


def _row(values: Sequence[float | None], names: Sequence[str]) -> dict[str, float]:
    return {n: v for n, v in zip(names, values) if v is not None}


# Paper Table 2 (Qwen3-4B-Instruct-2507 backbone; LC-Rec*/EAGER-LLM* re-trained by the authors). NDCG@1 is not
# reported (with one relevant item it equals Recall@1).
PAPER_TABLE2: dict[str, dict[str, dict[str, float]]] = {
    "instruments": {
        "TIGER": _row([0.0608, 0.0863, 0.1064, 0.0738, 0.0803], _DIRECT),
        "LC-Rec*": _row([0.0656, 0.0920, 0.1115, 0.0790, 0.0853], _DIRECT),
        "EAGER-LLM*": _row([0.0680, 0.0963, 0.1171, 0.0823, 0.0890], _DIRECT),
        "GREAM-Align": {**_row([0.0711, 0.1026, 0.1207, 0.0872, 0.0931], _DIRECT),
                        **_row([0.0495, 0.0705, 0.0829], _REASON)},
        "GREAM-RL": {**_row([0.0689, 0.0957, 0.1139, 0.0825, 0.0884], _DIRECT),
                     **_row([0.0650, 0.0765, 0.0845], _REASON)},
    },
    "sports": {
        "TIGER": _row([None, 0.0264, 0.0400, 0.0181, 0.0225], _DIRECT),
        "LC-Rec*": _row([0.0107, 0.0302, 0.0465, 0.0193, 0.0247], _DIRECT),
        "EAGER-LLM*": _row([0.0105, 0.0349, 0.0555, 0.0227, 0.0293], _DIRECT),
        "GREAM-Align": {**_row([0.0120, 0.0372, 0.0556, 0.0247, 0.0307], _DIRECT),
                        **_row([0.0043, 0.0163, 0.0275], _REASON)},
        "GREAM-RL": {**_row([0.0110, 0.0355, 0.0523, 0.0234, 0.0289], _DIRECT),
                     **_row([0.0074, 0.0201, 0.0300], _REASON)},
    },
    "beauty": {
        "TIGER": _row([None, 0.0454, 0.0648, 0.0321, 0.0384], _DIRECT),
        "LC-Rec*": _row([0.0143, 0.0494, 0.0740, 0.0330, 0.0417], _DIRECT),
        "EAGER-LLM*": _row([0.0171, 0.0534, 0.0787, 0.0363, 0.0451], _DIRECT),
        "GREAM-Align": {**_row([0.0190, 0.0567, 0.0814, 0.0383, 0.0463], _DIRECT),
                        **_row([0.0079, 0.0270, 0.0446], _REASON)},
        "GREAM-RL": {**_row([0.0172, 0.0551, 0.0771, 0.0365, 0.0436], _DIRECT),
                     **_row([0.0137, 0.0296, 0.0403], _REASON)},
    },
}
_ALIASES = {"instruments": "instruments", "musical_instruments": "instruments", "sports": "sports",
            "sports_and_outdoors": "sports", "beauty": "beauty"}


def paper_rows(dataset: str) -> dict[str, dict[str, float]] | None:
    """Published rows for a dataset name (case-insensitive; e.g. "Instruments", "Sports", "Beauty")."""
    key = dataset.strip().lower().replace(" ", "_").replace("&", "and")
    key = _ALIASES.get(key, key)
    return PAPER_TABLE2.get(key)


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _table(cols: Sequence[str], rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_fmt(vals.get(c)) for c in cols) + " |" for name, vals in rows]
    return lines


def write_report(metrics: Mapping[str, Any], cfg, plots: Sequence[str] = ()) -> str:
    """Markdown report: our metrics, the paper's rows for the same dataset when published, run facts, plots."""
    meta = metrics.get("meta", {})
    paper = paper_rows(cfg.dataset or "")
    ks = list(cfg.ks)
    lines = [f"# GREAM evaluation — {cfg.dataset or 'dataset'} / {cfg.split}", ""]
    lines.append(f"{meta.get('n_users')} users, {meta.get('n_ids')} valid IDs ({meta.get('n_items')} items); "
                 f"engine `{meta.get('engine')}`, {meta.get('elapsed_s')} s "
                 f"({meta.get('users_per_s')} users/s).")
    lines.append("")
    if "direct" in metrics:
        cols = [f"recall@{k}" for k in ks] + [f"ndcg@{k}" for k in ks]
        rows = [("this run (ID-level)", metrics["direct"]), ("this run (item-level)", metrics.get("direct_item", {}))]
        rows += [(f"paper: {name}", vals) for name, vals in (paper or {}).items()]
        lines += [f"## Direct recommendation ({cfg.num_beams}-beam trie-constrained search)", ""]
        lines += _table(cols, rows) + [""]
        lines.append("Item-level: an ID shared by several items counts only for the item its conflict slot names "
                     "first (lowest item id); identical to ID-level when every ID names one item.")
        lines.append("")
    if "reason" in metrics:
        cols = [f"pass@{k}" for k in ks] + ["valid_answer_rate", "well_formed_rate"]
        rows = [("this run", metrics["reason"])]
        rows += [(f"paper: {name}", vals) for name, vals in (paper or {}).items() if "pass@1" in vals]
        lines += [f"## Reasoning recommendation ({cfg.n_samples} samples, T={cfg.temperature}, top-p={cfg.top_p})",
                  ""]
        lines += _table(cols, rows) + [""]
        lines.append("pass@k = 1 − C(n−c,k)/C(n,k) per user (unbiased estimator from n samples), averaged.")
        lines.append("")
    if paper is None:
        lines += ["No published numbers for this dataset (paper Table 2 covers Instruments, Sports, Beauty).", ""]
    else:
        lines += ["Paper numbers: Table 2 of arXiv 2510.20815 (Qwen3-4B-Instruct-2507 backbone).", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def write_plots(metrics: Mapping[str, Any], records: Sequence[Mapping[str, Any]], out_dir: Path, cfg) -> list[str]:
    """PNG plots (matplotlib, Agg): direct metrics vs paper, pass@k curve, rank of the target in the beam list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paper = paper_rows(cfg.dataset or "") or {}
    paths: list[str] = []
    if "direct" in metrics:
        names = [f"recall@{k}" for k in cfg.ks] + [f"ndcg@{k}" for k in cfg.ks]
        series = [("this run", metrics["direct"])] + [(n, v) for n, v in paper.items() if n.startswith("GREAM")]
        fig, ax = plt.subplots(figsize=(8, 4))
        w = 0.8 / len(series)
        for j, (label, vals) in enumerate(series):
            ax.bar([i + j * w for i in range(len(names))], [vals.get(n, 0.0) or 0.0 for n in names], w, label=label)
        ax.set_xticks([i + w * (len(series) - 1) / 2 for i in range(len(names))], names)
        ax.set_ylabel("value")
        ax.set_title(f"Direct recommendation — {cfg.dataset or 'dataset'} / {cfg.split}")
        ax.legend()
        fig.tight_layout()
        paths.append(str(out_dir / "direct_metrics.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
        ranks = [M.hit_rank([h["id"] for h in r["direct"]], r["target_id"]) for r in records if "direct" in r]
        kmax = max(cfg.top_k, max(cfg.ks))
        counts = [sum(1 for x in ranks if x == i) for i in range(kmax)] + [sum(1 for x in ranks if x is None)]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.bar([str(i + 1) for i in range(kmax)] + ["miss"], counts)
        ax.set_xlabel("rank of the target ID in the beam list")
        ax.set_ylabel("users")
        fig.tight_layout()
        paths.append(str(out_dir / "target_rank.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    reason = [r["reason"] for r in records if "reason" in r]
    if reason:
        n = min(r["n"] for r in reason)
        ks = list(range(1, n + 1))
        curve = [sum(M.pass_at_k(r["n"], r["correct"], k) for r in reason) / len(reason) for k in ks]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(ks, curve, marker="o", label="this run")
        for name, vals in paper.items():
            pts = [(k, vals[f"pass@{k}"]) for k in (1, 5, 10) if f"pass@{k}" in vals and k <= n]
            if pts:
                ax.plot(*zip(*pts), marker="s", linestyle="--", label=f"paper: {name}")
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k")
        ax.set_title(f"Reasoning recommendation — {cfg.dataset or 'dataset'} / {cfg.split}")
        ax.legend()
        fig.tight_layout()
        paths.append(str(out_dir / "pass_at_k.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
