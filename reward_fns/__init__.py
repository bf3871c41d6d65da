"""SRPO reward and advantage (GREAM paper §5). Pure math in :mod:`reward_fns.srpo`; verl glue in
:mod:`reward_fns.verl_plugin` (imported only by verl's ``verl.plugins`` entry point or explicitly)."""

from reward_fns.srpo import (
    DEFAULT_BETA,
    DEFAULT_K,
    grpo_advantages,
    grpo_advantages_batched,
    id_tokens,
    keep_group,
    keep_mask,
    parse_answer,
    prefix_len,
    residual_reward,
    srpo_advantages,
    srpo_advantages_batched,
    success_prob,
)

__all__ = [
    "DEFAULT_BETA",
    "DEFAULT_K",
    "grpo_advantages",
    "grpo_advantages_batched",
    "id_tokens",
    "keep_group",
    "keep_mask",
    "parse_answer",
    "prefix_len",
    "residual_reward",
    "srpo_advantages",
    "srpo_advantages_batched",
    "success_prob",
]
