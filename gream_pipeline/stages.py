"""Declared stages and their runner.

A stage *declares* what it depends on and the runner does the rest::

    Stage("index", config=("index", "seed", "dataset.name"),
          consumes=(Input("data", "items.json"), Input("data", "reviews.json", optional=True),
                    Input("enrich", "enriched_items.json", when=uses_enriched_texts)),
          produces=("index.json", "vocab.json", "report.json"), run=run_index)

From the declarations the runner derives the pipeline DAG (a cycle is an error when the stages are registered),
hashes exactly the declared config nodes and consumed files into ``manifest.json`` (a re-run whose hashes match is
a no-op), gives ``run`` a :class:`StageContext` to read inputs and write outputs, builds the output in a temporary
directory that is renamed into place only on success, keeps a failed stage's partial output (framework logs,
rejected records) in ``<stage>.failed/`` and names it in the error, and removes temporary directories whose owning
process is gone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from omegaconf import DictConfig, OmegaConf

from gream_pipeline import __version__
from gream_pipeline.artifacts import MANIFEST, StageDir, hash_inputs, read_json, read_jsonl, read_manifest, \
    remove_stale_temp_dirs, sha256_json, write_json, write_jsonl
from gream_pipeline.errors import GreamError

log = logging.getLogger("gream")

FAILED_SUFFIX = ".failed"


def _always(cfg: DictConfig) -> bool:
    return True


@dataclass(frozen=True)
class Input:
    """An artifact a stage consumes: ``path`` (file or directory) inside the output of stage ``stage``.

    ``optional``: consumed (and hashed) when the producing stage wrote it, e.g. reviews of a catalogue without any.
    ``when``: consumed only when the predicate holds for the config (then it is required).
    """

    stage: str
    path: str
    optional: bool = False
    when: Callable[[DictConfig], bool] = _always


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: the config nodes and artifacts it depends on, what it produces, and how it runs.

    ``run(ctx)`` reads through ``ctx`` and writes into ``ctx.out``; it returns counts/metrics for the manifest.
    ``external`` lists files outside the pipeline that the stage reads (a dataset, a user's checkpoint).
    ``produces`` names the files/folders every successful run leaves (checked before the output is committed).
    """

    name: str
    config: tuple[str, ...]
    run: Callable[["StageContext"], dict]
    consumes: tuple[Input, ...] = ()
    produces: tuple[str, ...] = ()
    external: Callable[[DictConfig], list[Path]] = field(default=lambda cfg: [])
    enabled: Callable[[DictConfig], bool] = _always  # whether ``stage=all`` runs it
    description: str = ""

    @property
    def upstream(self) -> set[str]:
        return {i.stage for i in self.consumes}


STAGES: dict[str, Stage] = {}
ORDER: list[str] = []  # topological order of the registered stages


def register(*stages: Stage) -> None:
    """Add stages and recompute the pipeline order; an unknown upstream stage or a cycle is an error."""
    for stage in stages:
        STAGES[stage.name] = stage
    ORDER[:] = topological_order(STAGES)


def topological_order(stages: dict[str, Stage]) -> list[str]:
    """Stage names, every stage after the stages it consumes from (ties kept in registration order)."""
    for stage in stages.values():
        missing = stage.upstream - set(stages)
        if missing:
            raise GreamError(f"stage {stage.name!r} consumes from unknown stage(s) {sorted(missing)}")
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise GreamError(f"stage dependency cycle: {' → '.join(path + (name,))}")
        state[name] = "visiting"
        for up in sorted(stages[name].upstream, key=list(stages).index):
            visit(up, path + (name,))
        state[name] = "done"
        order.append(name)

    for name in stages:
        visit(name, ())
    return order


def stage_dir(cfg: DictConfig, name: str) -> Path:
    return Path(cfg.run_dir) / name


def is_complete(cfg: DictConfig, name: str) -> bool:
    return read_manifest(stage_dir(cfg, name)) is not None


def stage_config(cfg: DictConfig, stage: Stage) -> dict:
    """The resolved config nodes the stage declared (the only config its output depends on)."""
    out = {}
    for key in stage.config:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
        out[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return out


def _not_complete(cfg: DictConfig, name: str) -> GreamError:
    return GreamError(f"{stage_dir(cfg, name)}: stage {name!r} has not completed for run {cfg.run_name!r}; run "
                      f"`make {name}` (or `gream stage={name}` with the same overrides) first")


def consumed_paths(cfg: DictConfig, stage: Stage) -> list[Path]:
    """The files/folders the stage reads for this config; a missing required one is an error naming its stage."""
    paths = []
    for item in stage.consumes:
        if not item.when(cfg):
            continue
        if not is_complete(cfg, item.stage):
            if item.optional:
                continue
            raise _not_complete(cfg, item.stage)
        path = stage_dir(cfg, item.stage) / item.path
        if path.exists():
            paths.append(path)
        elif not item.optional:
            raise GreamError(f"{path}: missing from the output of stage {item.stage!r}; re-run it with "
                             f"`make {item.stage} ARGS=\"force=true\"`")
    return paths + [Path(p) for p in stage.external(cfg)]


class StageContext:
    """What a stage's ``run`` sees: the config, its declared inputs and its (temporary) output directory."""

    def __init__(self, cfg: DictConfig, stage: Stage, out: Path):
        self.cfg = cfg
        self.stage = stage
        self.out = out
        self.final = stage_dir(cfg, stage.name)

    def input(self, stage: str, path: str) -> Path:
        """Path of a declared input; reading anything undeclared is a programming error."""
        declared = [i for i in self.stage.consumes if i.stage == stage and i.path == path]
        if not declared:
            raise RuntimeError(f"stage {self.stage.name!r} did not declare input {stage}/{path}")
        full = stage_dir(self.cfg, stage) / path
        if not full.exists():
            if not is_complete(self.cfg, stage):
                raise _not_complete(self.cfg, stage)
            raise GreamError(f"{full}: missing from the output of stage {stage!r}")
        return full

    def has_input(self, stage: str, path: str) -> bool:
        return any(i.stage == stage and i.path == path for i in self.stage.consumes) and \
            (stage_dir(self.cfg, stage) / path).exists() and is_complete(self.cfg, stage)

    def read_json(self, stage: str, path: str) -> Any:
        return read_json(self.input(stage, path))

    def read_jsonl(self, stage: str, path: str) -> list[dict]:
        return read_jsonl(self.input(stage, path))

    def output(self, path: str) -> Path:
        """A path inside the stage's temporary output directory (parent folders created)."""
        target = self.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def final_path(self, path: str = "") -> Path:
        """Where ``path`` of this stage's output will live once committed: for files that outlive the stage and
        name other outputs (a YAML a user runs later). Processes launched *during* the stage use :meth:`output`."""
        return self.final / path if path else self.final

    def write_json(self, path: str, obj: Any, indent: int | None = 2) -> Path:
        target = self.output(path)
        write_json(target, obj, indent=indent)
        return target

    def write_jsonl(self, path: str, rows: Iterable[dict]) -> int:
        return write_jsonl(self.output(path), rows)

    @property
    def cache_dir(self) -> Path:
        """Run-level folder for state that outlives one attempt of a stage (the synth record store)."""
        path = Path(self.cfg.run_dir) / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path


def quiet_frameworks() -> None:
    """Importing LLaMA-Factory/TRL turns transformers' INFO logging on; keep warnings and progress bars only."""
    import transformers

    transformers.logging.set_verbosity_warning()


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory so far of this process and of its finished subprocesses (e.g. LLaMA-Factory), MiB."""
    import resource

    def to_mb(usage) -> float:  # Linux reports KiB
        return round(usage.ru_maxrss / 1024, 1)

    return {"peak_rss_mb": to_mb(resource.getrusage(resource.RUSAGE_SELF)),
            "peak_rss_children_mb": to_mb(resource.getrusage(resource.RUSAGE_CHILDREN))}


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished subprocesses so far."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _check_produced(stage: Stage, out: Path) -> None:
    missing = [p for p in stage.produces if not (out / p).exists()]
    if missing:
        raise GreamError(f"stage {stage.name!r} finished without writing {missing} (a bug: please report it)")


def _manifest(stage: Stage, config: dict, config_hash: str, inputs: dict, out: Path, counts: dict,
              started: float, cpu_started: float) -> dict:
    return {
        "stage": stage.name,
        "gream_version": __version__,
        "config_hash": config_hash,
        "config": config,
        "inputs": inputs,
        "outputs": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
        "counts": counts,
        "timings": {
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "seconds": round(time.time() - started, 3),
            "cpu_seconds": round(cpu_seconds() - cpu_started, 3),
            **peak_memory_mb(),
        },
    }


def run_stage(cfg: DictConfig, name: str) -> dict:
    """Run ``name`` unless its manifest matches the current config and inputs; returns the manifest."""
    if name not in STAGES:
        raise GreamError(f"stage={name!r} is unknown; choose one of {ORDER + ['all']}")
    stage = STAGES[name]
    out = stage_dir(cfg, name)
    remove_stale_temp_dirs(out.parent)
    config = stage_config(cfg, stage)
    inputs = hash_inputs(consumed_paths(cfg, stage))
    config_hash = sha256_json(config)
    previous = read_manifest(out)
    if previous and not cfg.force and previous.get("config_hash") == config_hash and previous.get("inputs") == inputs:
        log.info("stage %s is up to date (%s, config %s); nothing to do", name, out / MANIFEST, config_hash[:12])
        return previous
    log.info("stage %s → %s", name, out)
    quiet_frameworks()
    started, cpu_started = time.time(), cpu_seconds()
    stage_out = StageDir(out, failed=out.with_name(out.name + FAILED_SUFFIX))
    try:
        with stage_out as tmp:
            counts = stage.run(StageContext(cfg, stage, tmp))
            _check_produced(stage, tmp)
            manifest = _manifest(stage, config, config_hash, inputs, tmp, counts, started, cpu_started)
            write_json(tmp / MANIFEST, manifest)
    except GreamError as err:
        if stage_out.kept is not None:
            raise GreamError(f"{err} [stage {name} failed; its logs and partial output: {stage_out.kept}]") from err
        raise
    except BaseException:
        if stage_out.kept is not None:
            log.error("stage %s failed; its logs and partial output: %s", name, stage_out.kept)
        raise
    log.info("stage %s done in %.1f s", name, manifest["timings"]["seconds"])
    return manifest

