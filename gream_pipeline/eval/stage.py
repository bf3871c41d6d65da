"""The ``eval`` stage: evaluate a checkpoint in both inference modes on the test (and validation) split.

Top-level ``metrics.json`` holds the first split's metrics (``direct``, ``reason``, …) and all splits under
``splits``; ``report.md`` puts them beside the paper's Table 2; each split's per-mode predictions, report and plots
are in ``<split>/<mode>/``. Reasoning mode (sampling, costly on CPU) has its own user cap ``eval.reason_max_users``.
The checkpoint is ``eval.checkpoint``: ``auto`` (the RL stage's model when that stage completed, else the SFT
stage's), ``sft``, ``rl``, or a path to any local HF model directory whose tokenizer holds the ID tokens.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gream_pipeline.artifacts import read_jsonl
from gream_pipeline.errors import GreamError
from gream_pipeline.eval.config import EvalConfig
from gream_pipeline.eval.prompts import direct_prompt_for
from gream_pipeline.stages import Input, Stage, StageContext, is_complete


def _checkpoint_choice(cfg: DictConfig) -> str:
    choice = str(cfg.eval.checkpoint)
    if choice == "auto":
        return "rl" if is_complete(cfg, "rl") else "sft"
    return choice


def _external_checkpoint(cfg: DictConfig) -> list[Path]:
    choice = _checkpoint_choice(cfg)
    if choice in ("sft", "rl"):
        return []
    path = Path(choice)
    if not (path / "config.json").is_file():
        raise GreamError(f"eval.checkpoint: {path} is not a model directory (no config.json); use auto, sft, rl "
                         f"or a local HF model folder")
    return [path / "config.json", *sorted(path.glob("*.safetensors"))]


def checkpoint_dir(ctx: StageContext) -> Path:
    choice = _checkpoint_choice(ctx.cfg)
    return ctx.input(choice, "model") if choice in ("sft", "rl") else Path(choice)


def eval_config_from(node: dict, *, split: str, mode: str, dataset: str, max_users: int | None,
                     **fixed) -> EvalConfig:
    """EvalConfig for one split and one mode from a config node holding the library's decode settings."""
    values = {**node, "split": split, "dataset": dataset, "modes": [mode], "max_users": max_users, **fixed}
    try:
        return EvalConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise GreamError(f"eval: {err}") from None


def eval_config(cfg: DictConfig, split: str, mode: str) -> EvalConfig:
    """The eval stage's EvalConfig; reasoning mode evaluates ``eval.reason_max_users`` users."""
    values = OmegaConf.to_container(cfg.eval, resolve=True)
    reason_users = values.pop("reason_max_users")
    direct_users = values.pop("max_users")
    for key in ("checkpoint", "splits", "modes"):
        values.pop(key)
    if values.get("direct_prompt_fn") is None:  # the query of the SFT row format the checkpoint was trained on
        values["direct_prompt_fn"] = direct_prompt_for(str(cfg.sft.seqrec_format))
    return eval_config_from(values, split=split, mode=mode, dataset=str(cfg.dataset.name),
                            max_users=reason_users if mode == "reason" else direct_users)


def evaluate_split(ctx: StageContext, model: Path, index: dict, split: str) -> dict:
    """Both modes on one split (each into ``<split>/<mode>/``), merged into one metrics dict."""
    from gream_pipeline.eval.runner import evaluate

    examples = ctx.read_jsonl("data", f"{split}.jsonl")
    merged: dict = {}
    meta: dict = {}
    for mode in ctx.cfg.eval.modes:
        metrics = evaluate(model, index, examples, ctx.output(f"{split}/{mode}"), eval_config(ctx.cfg, split, mode))
        merged.update({k: v for k, v in metrics.items() if k not in ("meta", "reason_rank")})
        meta[mode] = metrics["meta"]
        merged[f"{mode}_users"] = metrics["meta"]["n_users"]
        merged[f"{mode}_users_per_s"] = metrics["meta"]["users_per_s"]
        if mode == "direct":
            merged.update(beside_most_popular(ctx, split, ctx.output(f"{split}/direct/predictions.jsonl")))
        if "reason_rank" in metrics:
            merged["reason_rank"] = metrics["reason_rank"]
    if "reason_rank" in merged:
        merged["reason_rank"] = reason_rank_block(ctx, split, merged, meta)
    return merged


def reason_rank_block(ctx: StageContext, split: str, merged: dict, meta: dict) -> dict:
    """Reasoning mode as a recommender beside direct mode on the same users (the first ``reason_users`` of the
    split): Recall/NDCG@K of each user's distinct answers ranked by count (ties: mean answer log-prob), direct
    mode's metrics on those users, and each mode's cost per recommendation (one top-K list per user)."""
    from gream_pipeline.eval.metrics import paired_bootstrap, ranking_metrics
    from gream_pipeline.semantic_ids import parse_tokens

    n = int(merged["reason_users"])
    ks = [int(k) for k in ctx.cfg.eval.ks]
    block: dict = {"users": n, "subset": f"the first {n} users of {split}.jsonl", "reason": merged["reason_rank"]}
    reason_meta = meta["reason"]
    cost = {"reason": {"seconds_per_user": reason_meta["seconds_per_user"],
                       "generated_tokens_per_user": merged["reason"]["generated_tokens_per_user"],
                       "samples_per_user": reason_meta["n_samples"]}}
    if "direct" in meta:
        records = read_jsonl(ctx.output(f"{split}/direct/predictions.jsonl"))[:n]
        if len(records) == n:
            block["direct_same_users"] = ranking_metrics([[h["id"] for h in r["direct"]] for r in records],
                                                         [r["target_id"] for r in records], ks)
            k = 10 if 10 in ks else max(ks)
            reasoned = read_jsonl(ctx.output(f"{split}/reason/predictions.jsonl"))
            ours = [float(r["target_id"] in r["reason"]["ranked"][:k]) for r in reasoned]
            direct = [float(any(h["id"] == r["target_id"] for h in r["direct"][:k])) for r in records]
            diff = paired_bootstrap(ours, direct, seed=int(ctx.cfg.seed))
            block["reason_minus_direct"] = {"metric": f"recall@{k}",
                                            **{key: round(v, 5) for key, v in diff.items() if key != "n"}}
        depth = max((len(parse_tokens(h["id"])) for r in records for h in r["direct"][:1]), default=0)
        cost["direct"] = {"seconds_per_user": meta["direct"]["seconds_per_user"],
                          "beam_tokens_per_user": int(meta["direct"]["num_beams"]) * depth}
    block["cost_per_recommendation"] = cost
    return block


def beside_most_popular(ctx: StageContext, split: str, predictions: Path) -> dict:
    """Most-popular on the users direct mode scored, a 95 % interval of gream's Recall@10 and the paired bootstrap
    interval of gream − most-popular (``most_popular``, ``recall@10_ci95``, ``vs_most_popular``)."""
    from gream_pipeline.eval.baselines import most_popular
    from gream_pipeline.eval.metrics import paired_bootstrap, wilson_interval

    records = read_jsonl(predictions)
    ks = [int(k) for k in ctx.cfg.eval.ks]
    k = 10 if 10 in ks else max(ks)
    baseline, top = most_popular(ctx.read_json("data", "inter.json"), records, split, ks)
    ours = [float(any(h["id"] == r["target_id"] for h in r["direct"][:k])) for r in records]
    theirs = [float(r["target"] in top[:k]) for r in records]
    lo, hi = wilson_interval(int(sum(ours)), len(ours))
    diff = paired_bootstrap(ours, theirs, seed=int(ctx.cfg.seed)) if records else {}
    return {"most_popular": baseline, f"recall@{k}_ci95": [round(lo, 5), round(hi, 5)],
            "vs_most_popular": {**{key: round(v, 5) for key, v in diff.items() if key != "n"}, "metric": f"recall@{k}",
                                "ratio": round(sum(ours) / sum(theirs), 3) if sum(theirs) else None,
                                "users": len(records)}}


def write_report(cfg: DictConfig, results: dict, path: Path) -> None:
    """One-page markdown: our metrics per split beside the paper's Table 2 rows for the same dataset."""
    from gream_pipeline.eval.report import paper_rows

    cols = ["recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10", "pass@1", "pass@5", "pass@10"]
    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"# GREAM evaluation — {cfg.dataset.name} ({cfg.run_name})", "",
             f"Checkpoint: `{results['checkpoint']}`", "", "| | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for split, m in results["splits"].items():
        values = {**m.get("direct", {}), **m.get("reason", {})}
        lines.append(f"| ours ({split}, {m.get('direct_users', '–')} / {m.get('reason_users', '–')} users) | "
                     + " | ".join(fmt(values.get(c)) for c in cols) + " |")
    for name, row in (paper_rows(str(cfg.dataset.name)) or {}).items():
        lines.append(f"| paper: {name} | " + " | ".join(fmt(row.get(c)) for c in cols) + " |")
    lines += ["", "Users: direct / reasoning mode. Per-mode predictions, reports and plots: `<split>/<mode>/`."]
    path.write_text("\n".join(lines) + "\n")


def run_eval(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    if not cfg.eval.splits:
        raise GreamError("eval.splits is empty (use e.g. [test, valid])")
    unknown = [s for s in cfg.eval.splits if s not in SPLITS]
    if unknown:
        raise GreamError(f"eval.splits: {unknown} not among {list(SPLITS)}")
    model = checkpoint_dir(ctx)
    index = ctx.read_json("index", "index.json")
    per_split = {split: evaluate_split(ctx, model, index, str(split)) for split in cfg.eval.splits}
    primary = str(cfg.eval.splits[0])
    results = {**per_split[primary], "split": primary, "checkpoint": str(model), "splits": per_split}
    ctx.write_json("metrics.json", results)
    write_report(cfg, results, ctx.output("report.md"))
    return results


SPLITS = ("test", "valid")


def _evaluates(split: str):
    return lambda cfg: split in cfg.eval.splits


def _uses_model(stage: str):
    return lambda cfg: _checkpoint_choice(cfg) == stage


EVAL = Stage(
    "eval", config=("eval", "sft.seqrec_format", "dataset.name"), run=run_eval,
    consumes=(Input("index", "index.json"), Input("data", "inter.json"), *(Input("data", f"{s}.jsonl", when=_evaluates(s)) for s in SPLITS),
              Input("rl", "model", when=_uses_model("rl")), Input("sft", "model", when=_uses_model("sft"))),
    external=_external_checkpoint, produces=("metrics.json", "report.md"),
    description="direct mode (trie-constrained beam, Recall/NDCG@K) and reasoning mode (Pass@K)")
