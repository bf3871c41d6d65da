"""Stages ``enrich`` (LLM-rewritten item descriptions, before ``index``) and ``synth`` (reverse-reasoning samples).

Both call :func:`data_synth.runner.run_synth`. Its record store lives in ``runs/<run>/cache/`` — outside the stage's
temporary output directory — so an interrupted run resumes: only missing records are requested again.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from data_synth.config import SynthConfig
from data_synth.runner import format_summary, run_synth
from gream_pipeline.artifacts import read_jsonl
from gream_pipeline.errors import GreamError
from gream_pipeline.stages import Stage, require_stage, stage_dir


def synth_config(cfg: DictConfig, jobs: tuple[str, ...], store: str) -> SynthConfig:
    values = OmegaConf.to_container(cfg.synth, resolve=True)
    values.update(jobs=jobs, store_path=str(Path(cfg.run_dir) / "cache" / store))
    try:
        return SynthConfig.from_mapping(values)
    except ValueError as err:
        raise GreamError(f"synth: {err}") from None


def _read_json(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def _run(cfg: DictConfig, out: Path, jobs: tuple[str, ...], store: str, index: dict) -> dict:
    data = require_stage(cfg, "data")
    items = _read_json(data / "items.json")
    if (data / "reviews.json").is_file():  # the enrichment prompt uses reviews where present (paper §4.1)
        for key, reviews in _read_json(data / "reviews.json").items():
            if key in items:
                items[key] = {**items[key], "reviews": reviews}
    train = read_jsonl(data / "train.jsonl")
    (Path(cfg.run_dir) / "cache").mkdir(parents=True, exist_ok=True)
    summary = run_synth(items, train, index, out, synth_config(cfg, jobs, store))
    print(format_summary(summary))
    return summary


def enrich_inputs(cfg: DictConfig) -> list[Path]:
    data = require_stage(cfg, "data")
    return [data / "items.json"] + ([data / "reviews.json"] if (data / "reviews.json").is_file() else [])


def run_enrich(cfg: DictConfig, out: Path) -> dict:
    if not _read_json(stage_dir(cfg, "data") / "items.json"):
        raise GreamError(f"enrich: dataset {cfg.dataset.name!r} has no item texts to rewrite")
    return _run(cfg, out, ("enrich",), "enrich_store.jsonl", index={})


def synth_inputs(cfg: DictConfig) -> list[Path]:
    data, index = require_stage(cfg, "data"), require_stage(cfg, "index")
    return [data / "items.json", data / "train.jsonl", index / "index.json"]


def run_reason(cfg: DictConfig, out: Path) -> dict:
    index = _read_json(require_stage(cfg, "index") / "index.json")
    summary = _run(cfg, out, ("reason",), "reason_store.jsonl", index)
    if not (out / "reasoning.jsonl").is_file() or not read_jsonl(out / "reasoning.jsonl"):
        raise GreamError("synth: no valid reasoning sample was produced; see rejected.jsonl in the stage output")
    return summary


ENRICH = Stage("enrich", ("synth", "dataset.name"), enrich_inputs, run_enrich,
               enabled=lambda cfg: cfg.index.text_source == "enriched")
SYNTH = Stage("synth", ("synth", "dataset.name"), synth_inputs, run_reason)
