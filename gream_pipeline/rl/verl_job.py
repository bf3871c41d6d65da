"""verl job composition for SRPO on GPU hosts, and the CPU-side check of that job (``make rl-check``).

The job is verl's own ``ppo_trainer`` config + ``recipes/verl/srpo_trainer.yaml`` (the SRPO deltas) + the overrides
built here (our RL parquet files, the SFT checkpoint, lengths and hardware knobs from ``rl.verl``). The check
composes exactly that config through Hydra, runs verl's ``validate_config``, loads the reward function through
verl's loader and runs verl's real ``compute_advantage`` dispatch with the ``srpo`` estimator on a batch scored
with that reward function. verl's trainer itself cannot run without GPUs (DESIGN.md §3).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gream_pipeline.errors import GreamError

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes" / "verl"
RECIPE = "srpo_trainer"


def job_overrides(train_files: Sequence[Path], val_files: Sequence[Path], model_dir: Path, out_dir: Path,
                  verl: Mapping) -> list[str]:
    """Hydra overrides that point the SRPO recipe at our data and checkpoint, plus ``rl.verl`` knobs."""
    files = lambda paths: "[" + ",".join(f"'{p}'" for p in paths) + "]"  # noqa: E731
    overrides = [
        f"data.train_files={files(train_files)}",
        f"data.val_files={files(val_files)}",
        f"actor_rollout_ref.model.path={model_dir}",
        f"trainer.default_local_dir={out_dir / 'checkpoints'}",
    ]
    return overrides + [f"{key}={value}" for key, value in dict(verl).items()]


def compose(overrides: Sequence[str]) -> DictConfig:
    """verl's ppo_trainer config with the SRPO recipe and ``overrides`` (Hydra composition, as main_ppo does)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(RECIPE_DIR), version_base=None):
            return hydra_compose(config_name=RECIPE, overrides=list(overrides))
    except Exception as err:  # hydra raises several types for bad keys/values
        raise GreamError(f"verl config does not compose: {err}") from None


def scored_batch(config: DictConfig, responses: Sequence[str], ground_truths: Sequence[str], uids: Sequence[str]):
    """A verl ``DataProto`` whose token-level rewards come from the configured reward function (last token)."""
    import torch
    from verl import DataProto
    from verl.trainer.ppo.reward import get_custom_reward_fn

    score_fn = get_custom_reward_fn(config)
    scores = np.array([score_fn(data_source="gream", solution_str=r, ground_truth=g)["score"]
                       for r, g in zip(responses, ground_truths)], dtype=np.float32)
    length = 6
    mask = torch.ones(len(scores), length)
    rewards = torch.zeros(len(scores), length)
    rewards[:, -1] = torch.as_tensor(scores)
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": np.array(list(uids), dtype=object)})
    return data, scores


def check(config: DictConfig, ground_truths: Sequence[str], seed: int = 0) -> dict:
    """Validate the composed job and run verl's advantage dispatch on rollouts near ``ground_truths``.

    Rollouts per prompt: the exact ID, its prefixes (partial credit), an unparseable text — so groups mix
    exact hits, partial and zero rewards; one group is all-equal (the case ``filter_groups`` drops).
    """
    import verl  # noqa: F401  (loads the gream entry point: registers `srpo`)
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.utils.config import validate_config

    from reward_fns.srpo import keep_mask, srpo_advantages_batched

    plain = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    try:
        validate_config(config=plain, use_reference_policy=True, use_critic=False)
    except Exception as err:
        raise GreamError(f"verl rejected the SRPO job config: {err}") from None
    estimator = get_adv_estimator_fn(str(config.algorithm.adv_estimator))
    rng = np.random.default_rng(seed)
    n = int(config.actor_rollout_ref.rollout.n)
    responses, truths, uids = [], [], []
    for p, truth in enumerate(ground_truths):
        tokens = truth.replace("><", ">\x00<").split("\x00")
        choices = [truth, "".join(tokens[:2]), tokens[0], "no answer"] if p else ["no answer"]
        picks = rng.choice(len(choices), size=n) if p else np.zeros(n, dtype=int)
        for c in picks:
            responses.append(f"<think>…</think> <answer>{choices[c]}</answer>")
            truths.append(truth)
            uids.append(f"prompt{p}")
    data, scores = scored_batch(plain, responses, truths, uids)
    out = compute_advantage(data, adv_estimator=plain.algorithm.adv_estimator, config=plain.algorithm)
    got = out.batch["advantages"][:, -1].numpy()
    uid_arr = np.array(uids)
    want = srpo_advantages_batched(scores, scores >= 1.0 - float(plain.algorithm.srpo_exact_tol), uid_arr,
                                   k=int(plain.algorithm.srpo_k))
    if not np.allclose(got, want, atol=1e-5):
        raise GreamError(f"verl's srpo dispatch disagrees with reward_fns.srpo (max diff {np.abs(got - want).max()})")
    kept = keep_mask(scores, uid_arr)
    return {"estimator": f"{estimator.__module__}.{estimator.__name__}", "rollouts": len(scores),
            "groups": len(set(uids)), "kept_groups": len(set(uid_arr[kept])), "mean_reward": float(scores.mean()),
            "advantage_max_abs_diff": float(np.abs(got - want).max()), "validate_config": "ok"}


def launch(overrides: Sequence[str], log_path: Path) -> None:
    """Run verl's trainer (GPU hosts): ``python -m verl.trainer.main_ppo`` with the SRPO recipe and overrides."""
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={RECIPE_DIR}", f"--config-name={RECIPE}",
           *overrides]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            sys.stderr.write(line)
        if proc.wait() != 0:
            raise GreamError(f"verl training failed (exit {proc.returncode}); see {log_path}")
