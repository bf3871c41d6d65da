"""One home for defaults: ``recipes/config.yaml`` declares every key with its default, the typed configs hold none.

For each typed config its field set equals the keys of its YAML section, except for the keys listed below (read by
a stage itself, or set by the stage per call), and no field has a default. Every key an experiment sets is declared
in ``config.yaml`` (or, under a config group such as ``dataset``, by one of the group's options).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from data_synth.config import SynthConfig
from gream_pipeline.eval.config import EngineConfig, EvalConfig, RayConfig
from tests.fixtures.configs import ROOT_CONFIG, section

RECIPES = ROOT_CONFIG.parent
EXPERIMENTS = sorted((RECIPES / "experiment").glob("*.yaml"))

#: ``eval.*`` keys the eval stage reads itself (checkpoint choice, splits, reasoning-mode user cap).
EVAL_STAGE_KEYS = {"checkpoint", "splits", "reason_max_users"}
#: EvalConfig fields the eval stage sets per call (not in ``eval.*``).
EVAL_PER_CALL = {"dataset", "split"}
#: ``rl.validate.*`` keys the rl stage reads itself, and the EvalConfig fields it sets per call.
RL_VALIDATE_STAGE_KEYS = {"users", "reason_users", "modes"}
RL_VALIDATE_PER_CALL = {"dataset", "split", "modes", "max_users", "plots", "save_texts"}
#: SRPOConfig fields the rl stage sets per call (not in ``rl.trl.*``).
SRPO_PER_CALL = {"advantage", "continuation_levels"}  # set by the rl stage per run
#: Top-level experiment keys that are no defaults: Hydra's defaults list and the experiment's own name/description.
EXPERIMENT_OWN = {"defaults", "experiment"}


def field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def defaulted(cls, names=None) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if (names is None or f.name in names)
            and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)]


@pytest.mark.parametrize("cls, dotted, stage_keys, per_call", [
    (SynthConfig, "synth", set(), set()),
    (EvalConfig, "eval", EVAL_STAGE_KEYS, EVAL_PER_CALL),
    (EngineConfig, "eval.engine", set(), set()),
    (RayConfig, "eval.ray", set(), set()),
    (EvalConfig, "rl.validate", RL_VALIDATE_STAGE_KEYS, RL_VALIDATE_PER_CALL),
], ids=["synth", "eval", "eval.engine", "eval.ray", "rl.validate"])
def test_typed_config_fields_equal_its_yaml_section(cls, dotted, stage_keys, per_call):
    keys = set(section(dotted))
    assert stage_keys <= keys, f"{dotted}: the stage reads {sorted(stage_keys - keys)}, not declared"
    expected = (keys - stage_keys) | per_call
    assert field_names(cls) - expected == set(), f"{cls.__name__} fields missing from {dotted}"
    assert expected - field_names(cls) == set(), f"{dotted} keys that are no {cls.__name__} field"
    assert defaulted(cls) == [], f"{cls.__name__} holds defaults (their home is {ROOT_CONFIG.name})"


def test_rl_validate_engine_is_complete():
    assert set(section("rl.validate.engine")) == field_names(EngineConfig)


def test_srpo_fields_live_in_rl_trl():
    pytest.importorskip("trl")
    from trl import GRPOConfig

    from gream_pipeline.rl.trl_srpo import SRPOConfig

    own = field_names(SRPOConfig) - field_names(GRPOConfig)
    keys = set(section("rl.trl"))
    assert own - SRPO_PER_CALL == own & keys, "SRPO fields missing from rl.trl"
    assert not SRPO_PER_CALL & keys
    assert keys <= field_names(SRPOConfig), "rl.trl keys that are no SRPOConfig field"
    assert defaulted(SRPOConfig, own) == ["continuation_levels"], "SRPO fields hold defaults (their home is rl.trl)"
    trl = {f.name: f for f in dataclasses.fields(GRPOConfig)}
    redeclared = [f.name for f in dataclasses.fields(SRPOConfig) if f.name in trl
                  and (f.default, f.default_factory) != (trl[f.name].default, trl[f.name].default_factory)]
    assert redeclared == [], "SRPOConfig changes TRL defaults; GREAM's values belong in rl.trl"


def _paths(node: dict, prefix: tuple = ()):
    for key, value in node.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


def _declared(base, path: tuple) -> bool:
    for key in path:
        if isinstance(base, dict) and not base:  # an empty mapping default (e.g. sft.extra: {}) is free-form
            return True
        if not isinstance(base, dict) or key not in base:
            return False
        base = base[key]
    return True


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_key_is_declared_in_config_yaml(experiment: Path):
    root = OmegaConf.to_container(OmegaConf.load(ROOT_CONFIG))
    deltas = OmegaConf.to_container(OmegaConf.load(experiment))
    undeclared = []
    for path in _paths({k: v for k, v in deltas.items() if k not in EXPERIMENT_OWN}):
        group = RECIPES / path[0]
        if group.is_dir() and path[0] not in root:  # a config group: one of its options declares the key
            options = [OmegaConf.to_container(OmegaConf.load(p)) for p in group.glob("*.yaml")]
            ok = len(path) == 1 or any(_declared(o, path[1:]) for o in options)
        else:
            ok = _declared(root, path)
        if not ok:
            undeclared.append(".".join(path))
    assert undeclared == [], f"{experiment.name} sets keys without a default in {ROOT_CONFIG.name}"


def test_walk_finds_undeclared_keys():
    root = {"a": {"b": 1, "free": {}}, "c": None}
    assert _declared(root, ("a", "b")) and _declared(root, ("a", "free", "x")) and _declared(root, ("c",))
    assert not _declared(root, ("a", "z")) and not _declared(root, ("c", "d"))
