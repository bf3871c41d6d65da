"""Stages ``rl`` (SRPO post-training) and ``rl_check`` (compose + check the verl GPU job on this host).

``rl.backend=trl`` (embedded default) trains SRPO on this machine through TRL (:mod:`gream_pipeline.rl.trl_srpo`),
optionally beside a plain-GRPO comparison run with the same seed and steps, and measures validation metrics
before and after with the stage's own settings (``rl.validate``: users, modes and decode settings; the eval
stage's settings do not affect this stage). ``rl.backend=verl`` launches verl's trainer with the SRPO recipe
(GPU hosts). Both write verl's RL parquet files and the job overrides to ``verl/`` so a GPU user can run the job.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gream_pipeline.errors import GreamError
from gream_pipeline.prompts import CONTINUATION
from gream_pipeline.rl import verl_job
from gream_pipeline.rl.prompts_data import rl_prompts, write_verl_parquet
from gream_pipeline.stages import Input, Stage, StageContext, stage_dir

MODES = ("direct", "reason")
log = logging.getLogger(__name__)


def _sample(rows: list, limit, seed: int) -> list:
    return rows if limit is None or len(rows) <= int(limit) else random.Random(seed).sample(rows, int(limit))


def emit_verl_data(ctx: StageContext) -> tuple[list[Path], list[Path], list[str], list[str]]:
    """verl RL parquet files (direct + reasoning prompts, train and validation) in ``verl/`` and the job's Hydra
    overrides twice: naming the files where they are now (to launch verl during the stage) and where the stage
    commits them (``verl/overrides.txt``, for a user who launches the job later)."""
    cfg, index = ctx.cfg, ctx.read_json("index", "index.json")
    train = _sample(ctx.read_jsonl("data", "train.jsonl"), cfg.rl.verl_max_prompts, cfg.seed)
    valid = _sample(ctx.read_jsonl("data", "valid.jsonl"), cfg.rl.validate.users or None, cfg.seed)
    names: dict[str, list[str]] = {"train": [], "val": []}
    for split, rows in (("train", train), ("val", valid)):
        for mode in MODES:
            name = f"verl/{split}_{mode}.parquet"
            write_verl_parquet(rl_prompts(rows, index, mode, str(cfg.sft.seqrec_format)), ctx.output(name),
                               data_source=f"gream_{mode}")
            names[split].append(name)
    sft_model = stage_dir(cfg, "sft") / "model"

    def overrides_at(where) -> list[str]:
        return verl_job.job_overrides([where(n) for n in names["train"]], [where(n) for n in names["val"]],
                                      sft_model, where(""), {}, experiment_name=str(cfg.run_name)) \
            + list(cfg.rl.verl_overrides)

    final = overrides_at(ctx.final_path)
    ctx.output("verl/overrides.txt").write_text("\n".join(final) + "\n")
    return [ctx.output(n) for n in names["train"]], [ctx.output(n) for n in names["val"]], \
        overrides_at(ctx.output), final


def validation_config(cfg: DictConfig, mode: str):
    """The eval library's settings for RL validation: ``rl.validate`` plus the training prompts."""
    from gream_pipeline.eval.prompts import direct_prompt_for
    from gream_pipeline.eval.stage import eval_config_from

    node = OmegaConf.to_container(cfg.rl.validate, resolve=True)
    users = node.pop("reason_users") if mode == "reason" else node["users"]
    node.pop("reason_users", None)
    node.pop("users")
    node.pop("modes")
    if node.get("direct_prompt_fn") is None:  # the query of the SFT row format the policy was trained on
        node["direct_prompt_fn"] = direct_prompt_for(str(cfg.sft.seqrec_format))
    return eval_config_from(node, split="valid", mode=mode, dataset=str(cfg.dataset.name), max_users=int(users),
                            plots=False, save_texts=False)


def validate(ctx: StageContext, model: Path, out: Path) -> dict:
    """Validation metrics of ``model`` per ``rl.validate.modes`` (the first users of the validation split)."""
    from gream_pipeline.eval.runner import evaluate

    examples = ctx.read_jsonl("data", "valid.jsonl")
    index = ctx.read_json("index", "index.json")
    return {mode: evaluate(model, index, examples, out / mode, validation_config(ctx.cfg, mode))[mode]
            for mode in ctx.cfg.rl.validate.modes}


def require_verl_prompts(cfg: DictConfig) -> None:
    """verl renders every prompt with ``add_generation_prompt=True``; a ``continuation`` query (an assistant turn to
    continue) cannot be expressed there."""
    if str(cfg.sft.seqrec_format) == "continuation":
        raise GreamError("rl.backend=verl needs prompts verl's chat template can express: sft.seqrec_format="
                         "continuation ends its queries in an assistant turn to continue; use sequence or per_target")


def run_rl(ctx: StageContext) -> dict:
    from gream_pipeline.rl.trl_srpo import train_srpo

    cfg, rl, out = ctx.cfg, ctx.cfg.rl, ctx.out
    _, _, launch_overrides, final_overrides = emit_verl_data(ctx)
    sft_model = ctx.input("sft", "model")
    if rl.backend == "verl":  # launched with this attempt's paths; its HF model is linked to model/ for eval
        require_verl_prompts(cfg)
        job = verl_job.run_job(launch_overrides, ctx.out, ctx.output("verl.log"))
        summary = {"backend": "verl", "overrides": final_overrides, "model_step": job["model_step"],
                   "model_source": job["model_source"], "metrics": job["metrics"]}
        ctx.write_json("rl_summary.json", summary)
        return summary
    if rl.backend != "trl":
        raise GreamError(f"rl.backend: {rl.backend!r} is not 'trl' or 'verl'")
    if rl.mode not in MODES:
        raise GreamError(f"rl.mode: {rl.mode!r} is not one of {list(MODES)}")
    train = _sample(ctx.read_jsonl("data", "train.jsonl"), rl.max_prompts, cfg.seed)
    records = rl_prompts(train, ctx.read_json("index", "index.json"), str(rl.mode), str(cfg.sft.seqrec_format))
    trl_cfg = {**OmegaConf.to_container(rl.trl, resolve=True), "seed": int(cfg.seed)}
    if rl.mode == "reason":  # rollouts think within the validation budget, then answer (<= 5 ID tokens + tags)
        trl_cfg["max_completion_length"] = int(rl.validate.think_budget) + REASON_ANSWER_TOKENS
        log.info("rl.mode=reason: rollouts of up to %d tokens (rl.validate.think_budget + %d)",
                 trl_cfg["max_completion_length"], REASON_ANSWER_TOKENS)
    elif str(cfg.sft.seqrec_format) == CONTINUATION:  # the answer is the first ID the rollout continues with
        trl_cfg["continuation_levels"] = int(cfg.index.levels)
        trl_cfg["max_completion_length"] = int(cfg.index.levels) + 1
        log.info("continuation rows: a rollout's answer is its first ID (%d tokens + conflict slot)",
                 int(cfg.index.levels))
    summary: dict = {"backend": "trl", "mode": str(rl.mode), "prompts": len(records)}
    validating = bool(rl.validate.users)
    if validating:
        summary["valid_before"] = validate(ctx, sft_model, out / "valid_before")
    summary["srpo"] = train_srpo(sft_model, records, out, {**trl_cfg, "advantage": "srpo"})
    if validating:
        summary["valid_after"] = validate(ctx, out / "model", out / "valid_after")
    if rl.compare_grpo:
        summary["grpo"] = train_srpo(sft_model, records, out / "grpo_compare", {**trl_cfg, "advantage": "grpo"})
        if validating:
            summary["grpo"]["valid_after"] = validate(ctx, out / "grpo_compare" / "model", out / "grpo_valid_after")
    if validating:
        summary["paired"] = paired_differences(out, list(ctx.cfg.rl.validate.modes), seed=int(cfg.seed),
                                               ks=[int(k) for k in ctx.cfg.rl.validate.ks])
    ctx.write_json("rl_summary.json", summary)
    return summary


#: tokens a reasoning rollout may add after its thinking budget: " <answer>", the ID (<= 5 tokens), "</answer>", EOS
REASON_ANSWER_TOKENS = 16
#: validation runs compared per user: (label, folder under the stage output)
VALIDATION_RUNS = (("before", "valid_before"), ("srpo", "valid_after"), ("grpo", "grpo_valid_after"))


def per_user_scores(predictions: list[dict], mode: str, ks: Sequence[int]) -> dict[str, list[float]]:
    """Per-user scores of one validation run: direct Recall@K; reasoning Pass@K and Recall@K of the ranked answers."""
    from gream_pipeline.eval.metrics import pass_at_k

    if mode == "direct":
        return {f"recall@{k}": [float(any(h["id"] == r["target_id"] for h in r["direct"][:k])) for r in predictions]
                for k in ks}
    n = min((r["reason"]["n"] for r in predictions), default=0)
    out = {f"pass@{k}": [pass_at_k(r["reason"]["n"], r["reason"]["correct"], k) for r in predictions]
           for k in ks if k <= n}
    out.update({f"rank_recall@{k}": [float(r["target_id"] in r["reason"]["ranked"][:k]) for r in predictions]
                for k in ks})
    return out


def paired_differences(out: Path, modes: list[str], seed: int, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Paired bootstrap intervals of SRPO − before, SRPO − GRPO and GRPO − before on the same validation users, per
    mode and metric (only the runs that exist)."""
    from gream_pipeline.artifacts import read_jsonl
    from gream_pipeline.eval.metrics import paired_bootstrap

    result: dict = {}
    for mode in modes:
        runs = {label: per_user_scores(read_jsonl(out / folder / mode / "predictions.jsonl"), mode, ks)
                for label, folder in VALIDATION_RUNS if (out / folder / mode / "predictions.jsonl").is_file()}
        pairs = [(a, b) for a, b in (("srpo", "before"), ("srpo", "grpo"), ("grpo", "before"))
                 if a in runs and b in runs]
        block: dict = {"users": len(next(iter(runs["before"].values()))) if "before" in runs else 0}
        for a, b in pairs:
            block[f"{a}-{b}"] = {metric: {k: round(v, 5) for k, v in
                                          paired_bootstrap(runs[a][metric], runs[b][metric], seed=seed).items()
                                          if k != "n"}
                                 for metric in runs[a] if runs[a][metric]}
        result[mode] = block
    return result


def run_rl_check(ctx: StageContext) -> dict:
    """Compose exactly the job ``rl.backend=verl`` launches (the same overrides, built by :func:`emit_verl_data`
    with this stage's folder in place of the rl stage's), validate it with verl, run verl's advantage dispatch and
    assert the hand-over (:func:`verl_job.handover_checks`, strict). Paths in the outputs are the committed ones."""
    require_verl_prompts(ctx.cfg)
    train_files, _, launch_overrides, _ = emit_verl_data(ctx)
    composed = verl_job.compose(launch_overrides)
    import pandas as pd

    truths = [row["ground_truth"] for row in pd.read_parquet(train_files[0])["reward_model"].head(8)]
    report = verl_job.check(composed, truths, seed=int(ctx.cfg.seed), stage_out=ctx.out,
                            experiment_name=str(ctx.cfg.run_name))
    committed = lambda text: text.replace(str(ctx.out), str(ctx.final_path()))  # noqa: E731
    ctx.output("verl_job.yaml").write_text(committed(OmegaConf.to_yaml(composed)))
    report = json.loads(committed(json.dumps(report)))
    ctx.write_json("check.json", report)
    print(json.dumps(report, indent=2))
    return {k: v for k, v in report.items() if k != "handover"}


PROMPT_INPUTS = (Input("data", "train.jsonl"), Input("data", "valid.jsonl"), Input("index", "index.json"))

RL = Stage(
    "rl", config=("rl", "sft.seqrec_format", "index.levels", "seed", "dataset.name"), run=run_rl,
    consumes=(Input("sft", "model"),) + PROMPT_INPUTS,
    produces=("rl_summary.json", "verl/overrides.txt"),
    description="SRPO post-training: single-machine on TRL, or verl on GPU hosts (rl.backend=verl)")
RL_CHECK = Stage(
    "rl_check", config=("rl", "sft.seqrec_format", "seed", "dataset.name"), run=run_rl_check, consumes=PROMPT_INPUTS,
    external=lambda cfg: [verl_job.RECIPE_DIR / f"{verl_job.RECIPE}.yaml"],
    produces=("check.json", "verl_job.yaml"), enabled=lambda cfg: False,
    description="compose the verl SRPO job with verl's own config, validate it, run verl's advantage dispatch")
