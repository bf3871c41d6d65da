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
    from gream_pipeline.config_check import check_config
    from gream_pipeline.stages import ORDER, STAGES, run_stage

    check_config(cfg)  # every value, the run name and missing mandatory values, before any stage
    names = [n for n in ORDER if STAGES[n].enabled(cfg)] if cfg.stage == "all" else [cfg.stage]
    for name in names:
        run_stage(cfg, name)
    if cfg.stage == "all":
        from gream_pipeline.summary import print_summary

        print_summary(cfg, names)


def debugging(cfg: DictConfig | None = None) -> bool:
    """Whether to show tracebacks: ``debug=true`` on the command line or ``GREAM_DEBUG=1`` in the environment."""
    return os.environ.get("GREAM_DEBUG", "") not in ("", "0") or (cfg is not None and cfg.get("debug", False) is True)


_USER_HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR" in os.environ


@hydra.main(version_base="1.3", config_path=str(RECIPES), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    if not _USER_HYDRA_FULL_ERROR:  # set by main() for composition errors only; stages and their children run without
        os.environ.pop("HYDRA_FULL_ERROR", None)
    try:
        run(cfg)
    except GreamError as err:
        if debugging(cfg):
            raise
        log.error("%s", err)
        sys.exit(2)
    except KeyboardInterrupt:
        log.error("interrupted; completed stages are kept, the interrupted one left its previous output untouched")
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - one line for the user, the traceback on request
        if debugging(cfg):
            raise
        log.error("unexpected error: %s: %s (re-run with debug=true or GREAM_DEBUG=1 for the traceback)",
                  type(err).__name__, err)
        sys.exit(1)


def _composition_error(err: Exception) -> str:
    """Hydra's (multi-line) message for a bad command line as one line."""
    text = " ".join(str(err).split("Config search path:")[0].split())
    cause = err.__cause__
    if cause is not None and str(cause).splitlines() and str(cause).splitlines()[0] not in text:
        text += f" ({str(cause).splitlines()[0].strip()})"
    return f"bad command-line argument: {text}"


def main() -> None:
    # OpenMP threads that sleep instead of spinning while they wait: on a CPU shared with other work, spinning
    # threads of torch and LLaMA-Factory slow each step several-fold (bench/omp_wait_policy.py).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    register_resolvers()
    # Hydra reports errors in composing the config (an unknown key or group option, bad override syntax) in
    # several lines with exit code 1; with HYDRA_FULL_ERROR they reach this function, which makes them one line
    # and exit code 2 like every other bad input. _hydra_main removes the variable again before any stage runs.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()
    except Exception as err:  # noqa: BLE001 - only composition errors get here (the task handles its own)
        if _USER_HYDRA_FULL_ERROR or debugging():
            raise
        print(_composition_error(err), file=sys.stderr)
        sys.exit(2)
    finally:
        if not _USER_HYDRA_FULL_ERROR:
            os.environ.pop("HYDRA_FULL_ERROR", None)


if __name__ == "__main__":
    main()
