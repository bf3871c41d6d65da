"""``gream`` / ``python -m gream_pipeline``: run a named stage from the Hydra recipes in ``recipes/``.

Examples::

    gream stage=data dataset=scientific
    gream stage=index experiment=demo_cpu dataset=instruments index.levels=3
    gream stage=all
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from gream_pipeline.errors import GreamError

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = Path(os.environ.get("GREAM_RECIPES", REPO_ROOT / "recipes")).resolve()
log = logging.getLogger("gream")


def _data_root() -> str:
    """``$GREAM_DATA_ROOT`` or ``<repo>/../shared/datasets``."""
    return os.environ.get("GREAM_DATA_ROOT", str((REPO_ROOT.parent / "shared" / "datasets").resolve()))


def register_resolvers() -> None:
    """Custom OmegaConf resolvers used by the recipes (``${gream.repo_root:}``, ``${gream.data_root:}``, …)."""
    resolvers = {
        "gream.repo_root": lambda: str(REPO_ROOT),
        "gream.data_root": _data_root,
        "gream.basename": lambda p: Path(str(p)).name,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def run(cfg: DictConfig) -> None:
    """Run ``cfg.stage`` (or every registered stage in order for ``stage=all``)."""
    from gream_pipeline import pipeline  # noqa: F401  (registers the stages)
    from gream_pipeline.stages import ORDER, STAGES, run_stage

    names = [n for n in ORDER if STAGES[n].enabled(cfg)] if cfg.stage == "all" else [cfg.stage]
    for name in names:
        run_stage(cfg, name)
    if cfg.stage == "all":
        from gream_pipeline.summary import print_summary

        print_summary(cfg, names)


@hydra.main(version_base="1.3", config_path=str(RECIPES), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except GreamError as err:
        log.error("%s", err)
        sys.exit(2)


def main() -> None:
    register_resolvers()
    _hydra_main()


if __name__ == "__main__":
    main()
