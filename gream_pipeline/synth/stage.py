"""Stages ``enrich`` (LLM-rewritten item descriptions, before ``index``) and ``synth`` (reverse-reasoning samples).

Both call :func:`data_synth.runner.run_synth`. Its record store lives in the run's ``cache/`` folder — outside the
stage's temporary output directory — so an interrupted run resumes: only missing records are requested again.
``enrich`` needs only the data stage, so ``index.text_source=enriched`` runs data → enrich → index → synth.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from data_synth.config import SynthConfig
from data_synth.runner import format_summary, run_synth
from gream_pipeline.artifacts import read_jsonl
from gream_pipeline.errors import GreamError
from gream_pipeline.index.stage import uses_enriched_texts
from gream_pipeline.stages import Input, Stage, StageContext


def synth_config(cfg: DictConfig, jobs: tuple[str, ...], store_path: str) -> SynthConfig:
    values = OmegaConf.to_container(cfg.synth, resolve=True)
    values.update(jobs=jobs, store_path=store_path)
    try:
        return SynthConfig.from_mapping(values)
    except ValueError as err:
        raise GreamError(f"synth: {err}") from None


def _run(ctx: StageContext, jobs: tuple[str, ...], store: str, index: dict, train: list[dict]) -> dict:
    items = ctx.read_json("data", "items.json")
    if ctx.has_input("data", "reviews.json"):  # the enrichment prompt uses reviews where present (paper §4.1)
        for key, reviews in ctx.read_json("data", "reviews.json").items():
            if key in items:
                items[key] = {**items[key], "reviews": reviews}
    config = synth_config(ctx.cfg, jobs, str(ctx.cache_dir / store))
    summary = run_synth(items, train, index, ctx.out, config)
    print(format_summary(summary))
    return summary


def run_enrich(ctx: StageContext) -> dict:
    if not ctx.read_json("data", "items.json"):
        raise GreamError(f"enrich: dataset {ctx.cfg.dataset.name!r} has no item texts to rewrite")
    return _run(ctx, ("enrich",), "enrich_store.jsonl", index={}, train=[])


def run_reasoning_synthesis(ctx: StageContext) -> dict:
    summary = _run(ctx, ("reason",), "reason_store.jsonl", ctx.read_json("index", "index.json"),
                   ctx.read_jsonl("data", "train.jsonl"))
    produced = ctx.out / "reasoning.jsonl"
    if not produced.is_file() or not read_jsonl(produced):
        raise GreamError("synth: no valid reasoning sample was produced; rejected.jsonl says why")
    return summary


ITEM_INPUTS = (Input("data", "items.json"), Input("data", "reviews.json", optional=True))

ENRICH = Stage(
    "enrich", config=("synth", "dataset.name"), run=run_enrich, consumes=ITEM_INPUTS,
    produces=("enriched_items.json", "rejected.jsonl"), enabled=uses_enriched_texts,
    description="LLM-rewritten item descriptions (paper §4.1), read by index when index.text_source=enriched")
SYNTH = Stage(
    "synth", config=("synth", "dataset.name"), run=run_reasoning_synthesis,
    consumes=ITEM_INPUTS + (Input("data", "train.jsonl"), Input("index", "index.json")),
    produces=("reasoning.jsonl", "rejected.jsonl"),
    description="5-stage reverse-reasoning samples through an OpenAI-compatible endpoint or the offline synthesizer")
