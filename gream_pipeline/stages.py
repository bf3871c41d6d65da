"""Stage registry and runner: each stage is resolved by name and run with manifest-based no-op detection."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from gream_pipeline import __version__
from gream_pipeline.artifacts import MANIFEST, StageDir, hash_inputs, read_manifest, sha256_json, write_json_atomic
from gream_pipeline.errors import GreamError

log = logging.getLogger("gream")


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: which config it depends on, which files it reads, and how it runs.

    ``run(cfg, out_dir)`` writes its artifacts into ``out_dir`` and returns counts/metrics for the manifest.
    """

    name: str
    config_keys: tuple[str, ...]
    inputs: Callable[[DictConfig], list[Path]]
    run: Callable[[DictConfig, Path], dict]
    enabled: Callable[[DictConfig], bool] = lambda cfg: True  # whether ``stage=all`` runs it


STAGES: dict[str, Stage] = {}
ORDER: list[str] = []


def register(stage: Stage) -> Stage:
    """Add a stage; registration order is pipeline order (see :mod:`gream_pipeline.pipeline`)."""
    if stage.name not in STAGES:
        ORDER.append(stage.name)
    STAGES[stage.name] = stage
    return stage


def stage_dir(cfg: DictConfig, name: str) -> Path:
    return Path(cfg.run_dir) / name


def stage_config(cfg: DictConfig, stage: Stage) -> dict:
    """The resolved config subtree that determines the stage's output."""
    out = {}
    for key in stage.config_keys:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
        out[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return out


def quiet_frameworks() -> None:
    """Importing LLaMA-Factory/TRL turns transformers' INFO logging on; keep warnings and progress bars only."""
    import transformers

    transformers.logging.set_verbosity_warning()


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory so far of this process and of its finished subprocesses (e.g. LLaMA-Factory), MiB."""
    import resource

    to_mb = lambda usage: round(usage.ru_maxrss / 1024, 1)  # noqa: E731  (Linux reports KiB)
    return {"peak_rss_mb": to_mb(resource.getrusage(resource.RUSAGE_SELF)),
            "peak_rss_children_mb": to_mb(resource.getrusage(resource.RUSAGE_CHILDREN))}


def run_stage(cfg: DictConfig, name: str) -> dict:
    """Run ``name`` unless its manifest matches the current config and inputs; returns the manifest."""
    if name not in STAGES:
        raise GreamError(f"stage={name!r} is unknown; choose one of {ORDER + ['all']}")
    stage = STAGES[name]
    out = stage_dir(cfg, name)
    config = stage_config(cfg, stage)
    inputs = hash_inputs(stage.inputs(cfg))
    config_hash = sha256_json(config)
    previous = read_manifest(out)
    if previous and not cfg.force and previous.get("config_hash") == config_hash and previous.get("inputs") == inputs:
        log.info("stage %s is up to date (%s, config %s); nothing to do", name, out / MANIFEST, config_hash[:12])
        return previous
    log.info("stage %s → %s", name, out)
    quiet_frameworks()
    started = time.time()
    with StageDir(out) as tmp:
        counts = stage.run(cfg, tmp)
        manifest = {
            "stage": name,
            "gream_version": __version__,
            "config_hash": config_hash,
            "config": config,
            "inputs": inputs,
            "outputs": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()),
            "counts": counts,
            "timings": {
                "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
                "seconds": round(time.time() - started, 3),
                **peak_memory_mb(),
            },
        }
        write_json_atomic(tmp / MANIFEST, manifest)
    log.info("stage %s done in %.1f s", name, manifest["timings"]["seconds"])
    return manifest


def require_stage(cfg: DictConfig, name: str) -> Path:
    """Directory of a completed upstream stage, or a clear error telling which make target to run."""
    path = stage_dir(cfg, name)
    if read_manifest(path) is None:
        raise GreamError(f"{path}: stage {name!r} has not completed for run {cfg.run_name!r}; run `make {name}` "
                         f"(or `gream stage={name}` with the same overrides) first")
    return path
