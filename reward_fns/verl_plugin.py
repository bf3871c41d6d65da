"""verl 0.9.1 glue for SRPO (GREAM paper §5): the ``srpo`` advantage estimator and a reward ``compute_score``.

Loading: ``pyproject.toml`` declares the entry point ``verl.plugins: gream_srpo = reward_fns.verl_plugin``, which
``import verl`` loads in every process (driver, Ray task runner, workers) — note verl logs plugin import errors only
at DEBUG level. The same module serves ``reward.custom_reward_function.path=pkg://reward_fns.verl_plugin`` (use
``pkg://`` so the module object is shared; registration is idempotent anyway).

verl calls custom estimators from ``verl.trainer.ppo.ray_trainer.compute_advantage`` as
``fn(token_level_rewards=(bs, T), response_mask=(bs, T), config=<algorithm config>[, index=uid array]
[, reward_baselines=…])`` and expects ``(advantages, returns)``, both (bs, T).

Config keys read from ``algorithm`` (add them with ``+algorithm.…=`` on the command line, or via the recipe):
    * ``srpo_k`` (int, default :data:`reward_fns.srpo.DEFAULT_K` = 4): k of eq. 15 (the paper does not state it).
    * ``srpo_exact_tol`` (float, default 1e-6): a rollout is exact (v_i = 1) iff its summed reward ≥ 1 − tol.
      Valid because r_rs = 1 ⇔ exact match and r_rs ≤ √((H−1)/H) otherwise; requires ``use_kl_in_reward=False``.
β (eq. 14) belongs to the reward: ``+reward.custom_reward_function.reward_kwargs.beta=0.5`` (default 0.5).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

from reward_fns.srpo import DEFAULT_BETA, DEFAULT_K, id_tokens, parse_answer, prefix_len, srpo_advantages_batched

logger = logging.getLogger(__name__)

ESTIMATOR_NAME = "srpo"
DEFAULT_EXACT_TOL = 1e-6


def _cfg(config: Any, key: str, default: Any) -> Any:
    if config is None:
        return default
    value = config.get(key, default)
    return default if value is None else value


def compute_srpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    epsilon: float = 1e-6,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SRPO A_final (eqs. 15–21) per rollout, grouped by ``index`` (verl's ``uid``), broadcast over the mask.

    r_i = Σ_t token_level_rewards (the residual reward of eq. 14), v_i = [r_i ≥ 1 − srpo_exact_tol].
    Like verl's GRPO: unbiased group std, ``std + epsilon``, singleton groups use mean 0 / std 1.
    """
    if index is None:
        raise ValueError("SRPO needs the rollout group index (non_tensor_batch['uid'])")
    if not _cfg(config, "norm_adv_by_std_in_grpo", True):
        raise ValueError("SRPO normalises A_rs by the group std (eq. 17): norm_adv_by_std_in_grpo must be true")
    k = int(_cfg(config, "srpo_k", DEFAULT_K))
    tol = float(_cfg(config, "srpo_exact_tol", DEFAULT_EXACT_TOL))
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1).detach().to("cpu", torch.float64).numpy()
        adv = srpo_advantages_batched(scores, scores >= 1.0 - tol, np.asarray(index, dtype=object), k, epsilon)
        scalars = torch.as_tensor(adv, dtype=token_level_rewards.dtype, device=token_level_rewards.device)
        advantages = scalars.unsqueeze(-1) * response_mask
    return advantages, advantages


# Register once per process, even if this file is also loaded under another module name (e.g. a file:// path).
if ESTIMATOR_NAME not in ADV_ESTIMATOR_REGISTRY:
    register_adv_est(ESTIMATOR_NAME)(compute_srpo_outcome_advantage)


def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    beta: float = DEFAULT_BETA,
    **kwargs: Any,
) -> dict[str, float | int]:
    """Residual-sensitive reward (eqs. 13–14) for ``reward.custom_reward_function``.

    ``ground_truth``: ID string ``"<a_1><b_2>…"`` or a token sequence. Returns ``{"score": r_rs, "prefix_len": ℓ,
    "exact": 0/1}``; verl copies every key into ``reward_extra_info`` (so ``filter_groups.metric=score`` works).
    """
    target = id_tokens(ground_truth)
    if not target:
        raise ValueError(f"ground truth holds no ID token: {ground_truth!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    pred = parse_answer(solution_str)
    ell = prefix_len(pred, target)
    return {"score": float((ell / len(target)) ** beta), "prefix_len": ell, "exact": int(ell == len(target))}
