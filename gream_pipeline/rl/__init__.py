"""RL stage pieces: prompt records / verl parquet (:mod:`.prompts_data`) and the single-machine SRPO trainer on
TRL (:mod:`.trl_srpo`, imported lazily: it pulls in torch, transformers and trl)."""

from gream_pipeline.rl.prompts_data import rl_prompts, verl_rows, write_verl_parquet

__all__ = ["SRPOConfig", "SRPOTrainer", "rl_prompts", "srpo_reward", "train_srpo", "verl_rows", "write_verl_parquet"]

_LAZY = {"SRPOConfig", "SRPOTrainer", "srpo_reward", "train_srpo"}


def __getattr__(name: str):
    if name in _LAZY:
        from gream_pipeline.rl import trl_srpo

        return getattr(trl_srpo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
