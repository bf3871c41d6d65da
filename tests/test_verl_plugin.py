"""verl 0.9.1 integration of SRPO: entry-point registration, real advantage dispatch, compute_score, recipe config."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

verl = pytest.importorskip("verl")

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories  # noqa: E402

from reward_fns import verl_plugin  # noqa: E402
from reward_fns.srpo import DEFAULT_K, srpo_advantages_batched  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPE_DIR = REPO / "recipes" / "verl"
T = 6  # response length


def _batch(seed: int = 0, exact_rate: float = 0.3):
    """A DataProto shaped like verl's: 4 prompts × 10 rollouts + a 3-rollout group, shuffled; score on last token."""
    rng = np.random.default_rng(seed)
    uids = np.array([f"p{i}" for i in range(4) for _ in range(10)] + ["q"] * 3, dtype=object)
    n = len(uids)
    exact = rng.random(n) < exact_rate
    scores = np.where(exact, 1.0, np.sqrt(rng.integers(0, 4, n) / 4)).astype(np.float32)
    perm = rng.permutation(n)
    uids, scores = uids[perm], scores[perm]
    lengths = rng.integers(1, T + 1, n)
    mask = (torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]).float()
    tlr = torch.zeros(n, T)
    tlr[torch.arange(n), torch.as_tensor(lengths) - 1] = torch.as_tensor(scores)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": tlr, "response_mask": mask}, non_tensors={"uid": uids}
    )
    return data, scores.astype(np.float64), uids, mask


def _algo(**kw):
    return OmegaConf.create({"adv_estimator": "srpo", "norm_adv_by_std_in_grpo": True, **kw})


def test_entry_point_registers_on_plain_import_verl(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_")}
    code = (
        "import sys, verl\n"
        "from verl.trainer.ppo.core_algos import get_adv_estimator_fn as g\n"
        "fn = g('srpo')\n"
        "assert 'reward_fns.verl_plugin' in sys.modules\n"
        "print(fn.__module__, fn.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "reward_fns.verl_plugin compute_srpo_outcome_advantage"


def test_registry_returns_plugin_function():
    assert core_algos.get_adv_estimator_fn("srpo") is verl_plugin.compute_srpo_outcome_advantage


def test_compute_advantage_dispatch_matches_equations():
    data, scores, uids, mask = _batch()
    assert 0 < (scores == 1).sum() < len(scores)
    for k in (1, 2, DEFAULT_K, 10):
        out = compute_advantage(data, adv_estimator="srpo", config=_algo(srpo_k=k))
        want = srpo_advantages_batched(scores, scores == 1.0, uids, k=k)
        expected = torch.as_tensor(want, dtype=torch.float32)[:, None] * mask
        torch.testing.assert_close(out.batch["advantages"], expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.batch["returns"], out.batch["advantages"])
        assert torch.all(out.batch["advantages"][mask == 0] == 0)


def test_default_k_and_v1_trainer_path():
    data, scores, uids, mask = _batch(seed=1)
    keys = [f"{u}_0_{i}" for i, u in enumerate(uids)]  # v1 trainer keys: {uid}_{session}_{index}
    out = compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator="srpo", config=_algo())
    want = srpo_advantages_batched(scores, scores == 1.0, uids, k=DEFAULT_K)
    torch.testing.assert_close(
        out.batch["advantages"], torch.as_tensor(want, dtype=torch.float32)[:, None] * mask, rtol=1e-5, atol=1e-5
    )


def test_hand_group_through_verl():
    # one group G=4, k=2: r = [1, .5, .5, 0], exact = [1, 0, 0, 0] → A_rs ± bonus (see test_srpo_math)
    tlr = torch.tensor([[0.0, 1.0], [0.0, 0.5], [0.5, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    fn = core_algos.get_adv_estimator_fn("srpo")
    uid = np.array(["u"] * 4, dtype=object)
    adv, ret = fn(token_level_rewards=tlr, response_mask=mask, index=uid, config=_algo(srpo_k=2))
    std = math.sqrt(1 / 6)
    want = torch.tensor([0.5 / (std + 1e-6) + 1, -1 / 3, -1 / 3, -0.5 / (std + 1e-6) - 1 / 3])
    torch.testing.assert_close(adv, want[:, None] * mask)
    assert ret is adv


def test_without_exact_hits_equals_verl_grpo():
    data, scores, uids, mask = _batch(seed=2, exact_rate=0.0)
    assert (scores < 1).all()
    srpo = compute_advantage(data, adv_estimator="srpo", config=_algo(srpo_k=3)).batch["advantages"].clone()
    grpo, _ = core_algos.compute_grpo_outcome_advantage(data.batch["token_level_rewards"], mask, uids)
    grpo_v, _ = core_algos.compute_grpo_vectorized_outcome_advantage(data.batch["token_level_rewards"], mask, uids)
    torch.testing.assert_close(srpo, grpo, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(srpo, grpo_v, rtol=1e-5, atol=1e-5)


def test_estimator_rejects_missing_index_and_unnormalised_config():
    tlr, mask = torch.ones(2, 1), torch.ones(2, 1)
    fn = verl_plugin.compute_srpo_outcome_advantage
    with pytest.raises(ValueError):
        fn(token_level_rewards=tlr, response_mask=mask, config=_algo())
    with pytest.raises(ValueError):
        fn(token_level_rewards=tlr, response_mask=mask, index=np.zeros(2), config=_algo(norm_adv_by_std_in_grpo=False))


def test_compute_score_hand_strings():
    gt = "<a_1><b_2><c_3><d_4>"
    cs = verl_plugin.compute_score
    full = "<think>Step 1 …</think>\nLet's rewrite user's purchase history: …\n<answer><a_1><b_2><c_3><d_4></answer>"
    assert cs("instruments", full, gt) == {"score": 1.0, "prefix_len": 4, "exact": 1}
    two = cs("instruments", "<answer><a_1><b_2><c_7><d_4></answer>", ["<a_1>", "<b_2>", "<c_3>", "<d_4>"])
    assert two["prefix_len"] == 2 and two["exact"] == 0 and two["score"] == pytest.approx(math.sqrt(0.5))
    assert cs("x", "<a_1><b_2><c_3>", np.array(["<a_1>", "<b_2>", "<c_3>", "<d_4>"], dtype=object))["score"] == (
        pytest.approx(math.sqrt(0.75))
    )
    assert cs("x", "I would suggest a guitar.", gt) == {"score": 0.0, "prefix_len": 0, "exact": 0}
    assert cs("x", "<a_1><b_2><c_3><d_4><e_0>", gt)["exact"] == 0  # longer than the target ID
    assert cs("x", "<answer><a_1><b_2></answer>", gt, beta=1.0)["score"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        cs("x", "<a_1>", "no id here")


def _compose(overrides=()):
    with initialize_config_dir(config_dir=str(RECIPE_DIR), version_base=None):
        return compose(config_name="srpo_trainer", overrides=list(overrides))


@pytest.fixture(scope="module")
def recipe_cfg():
    return _compose(
        [  # hardware-dependent knobs that verl's validate_config requires; not part of the recipe
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
        ]
    )


def test_recipe_composes_with_verl_config(recipe_cfg):
    c = recipe_cfg
    a, actor, rollout = c.algorithm, c.actor_rollout_ref.actor, c.actor_rollout_ref.rollout
    assert a.adv_estimator == "srpo" and a.srpo_k == DEFAULT_K and a.srpo_exact_tol == 1e-6
    assert a.filter_groups.enable is True and a.filter_groups.metric == "score"
    assert a.use_kl_in_reward is False and a.norm_adv_by_std_in_grpo is True
    assert actor.use_kl_loss is True and actor.kl_loss_coef == 0.001
    assert actor.optim.lr == 4e-6 and actor.optim.weight_decay == 0.01
    assert c.data.train_batch_size == 256 and actor.ppo_mini_batch_size == 128
    assert rollout.name == "sglang" and rollout.n == 10 and rollout.temperature == 0.5 and rollout.top_p == 1.0
    rf = c.reward.custom_reward_function
    assert rf.path == "pkg://reward_fns.verl_plugin" and rf.name == "compute_score" and rf.reward_kwargs.beta == 0.5
    assert actor.loss_agg_mode == "seq-mean-token-mean"  # paper eq. 22 (verl's default is token-mean)
    # hand-over: the final step is saved with a HF model, offline loggers, gream's names
    t = c.trainer
    assert t.save_freq > 0 and "hf_model" in actor.checkpoint.save_contents
    assert list(actor.checkpoint.load_contents) == ["model", "optimizer", "extra"]
    assert list(t.logger) == ["console", "tensorboard", "file"] and t.project_name == "gream"
    # inherited from verl's ppo_trainer (not restated by the recipe)
    assert c.trainer.use_v1 is True and a.gamma == 1.0 and actor.clip_ratio == 0.2


def test_recipe_passes_verl_validation_and_loads_reward(recipe_cfg):
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = OmegaConf.create(OmegaConf.to_container(recipe_cfg, resolve=False))
    assert need_reference_policy(cfg) is True
    with pytest.warns(UserWarning):
        assert need_critic(cfg) is False
    validate_config(config=cfg, use_reference_policy=True, use_critic=False)
    score_fn = get_custom_reward_fn(cfg)  # verl's own loader, with reward_kwargs (β) merged in
    res = score_fn(data_source="d", solution_str="<answer><a_1><b_2></answer>", ground_truth="<a_1><b_2><c_3><d_4>")
    assert res == {"score": pytest.approx(math.sqrt(0.5)), "prefix_len": 2, "exact": 0}
    # the composed algorithm section feeds the estimator directly (as the v1 trainer does)
    data, scores, uids, mask = _batch(seed=3)
    out = compute_advantage(data, adv_estimator=cfg.algorithm.adv_estimator, config=cfg.algorithm)
    want = srpo_advantages_batched(scores, scores == 1.0, uids, k=cfg.algorithm.srpo_k)
    torch.testing.assert_close(
        out.batch["advantages"], torch.as_tensor(want, dtype=torch.float32)[:, None] * mask, rtol=1e-5, atol=1e-5
    )


def test_readme_overrides_on_stock_ppo_trainer_match_recipe(recipe_cfg):
    """The override list in reward_fns/README.md, applied to verl's own ppo_trainer, gives the recipe's SRPO values."""
    readme = (REPO / "reward_fns" / "README.md").read_text()
    block = readme.split("python -m verl.trainer.main_ppo \\\n", 1)[1].split("```", 1)[0]
    overrides = re.findall(r"^\s*(\+?[\w.]+=\S+?)\s*\\?$", block, flags=re.M)
    assert len(overrides) == 14
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        stock = compose(config_name="ppo_trainer", overrides=overrides)
    for key in [
        "algorithm.adv_estimator", "algorithm.srpo_k", "algorithm.use_kl_in_reward", "algorithm.filter_groups",
        "actor_rollout_ref.actor.use_kl_loss", "actor_rollout_ref.actor.kl_loss_coef",
        "actor_rollout_ref.actor.loss_agg_mode",
        "reward.custom_reward_function", "actor_rollout_ref.rollout.n", "actor_rollout_ref.rollout.temperature",
        "actor_rollout_ref.rollout.top_p",
    ]:
        assert OmegaConf.select(stock, key) == OmegaConf.select(recipe_cfg, key), key
