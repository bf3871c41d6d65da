"""Single-machine SRPO (GREAM paper §5) on TRL 0.24's ``GRPOTrainer`` — the embedded RL default (verl needs GPUs).

The math is :mod:`reward_fns.srpo`, shared with the verl plugin; this module only plugs it into TRL:

* **Reward** (eqs. 13–14): :func:`srpo_reward` — r_rs = (ℓ/H)^β from :func:`~reward_fns.srpo.parse_answer` and
  :func:`~reward_fns.srpo.residual_reward`, exactly what ``reward_fns.verl_plugin.compute_score`` returns as ``score``.
* **Advantage** (eqs. 15–21, or eq. 10 for the comparison run): TRL has no hook, so
  :meth:`SRPOTrainer._generate_and_score_completions` lets TRL generate, score and compute its own advantages, then
  replaces ``advantages`` by :func:`~reward_fns.srpo.srpo_advantages_batched` (v_i = [r_i ≥ 1 − ``exact_tol``],
  sound since r_rs = 1 ⇔ exact match) or :func:`~reward_fns.srpo.grpo_advantages_batched` (``advantage="grpo"``).
  The rewards are taken from :meth:`_calculate_rewards` (overridden only to keep a reference to them). TRL puts the
  G rollouts of a prompt next to each other, so rollout j belongs to group j // G.
* **Variance-guided dynamic sampling** (eq. 22): groups with std(r) = 0 (:func:`~reward_fns.srpo.keep_mask`) are
  dropped inside the batch (TRL cannot re-sample to refill it, unlike verl's ``filter_groups``). A dropped rollout
  gets advantage 0 *and* an all-zero ``completion_mask`` (TRL's own mechanism for ``mask_truncated_completions``),
  so neither its policy-gradient nor its KL term enters the loss (their reference/old log-probs are set to constants
  that keep the masked terms finite, see :func:`_neutralise_dropped`), and the loss normaliser counts kept rollouts:
  ``loss_type="grpo"`` (eq. 22: 1/G Σ_i 1/|o_i| Σ_t, the default) and ``"dr_grpo"`` are rescaled by
  N / N_kept of the generation batch in :meth:`compute_loss` (exact when ``steps_per_generation`` equals
  ``gradient_accumulation_steps``, TRL's default); ``"dapo"`` gets ``num_items_in_batch`` = kept completion tokens;
  ``"bnpo"`` already divides by the mask sum. If every group of a batch is dropped the loss and its gradient are 0
  (the optimizer step still applies AdamW momentum and weight decay).
* **Continuation rows** (``continuation_levels`` > 0, set by the rl stage for direct mode with
  ``sft.seqrec_format=continuation``): a rollout continues the history's run of IDs, so its answer is the ID it
  starts with (:func:`~gream_pipeline.semantic_ids.first_id`), and only that ID's tokens (:func:`continuation_mask`:
  the first ``continuation_levels`` tokens, plus a conflict-slot token after them) enter the loss; the items the
  policy goes on to emit after it are not trained on.
* **KL** to the reference policy is TRL's KL *loss* (k3 estimator, verl's ``low_var_kl``) with coefficient
  ``beta`` = 0.001 (paper); it is not put into the reward.

Per generation batch the trainer logs ``srpo/reward_mean``, ``srpo/exact_rate``, ``srpo/kept_group_frac``;
:func:`train_srpo` writes them with loss and KL per step to ``log.jsonl`` and plots reward and kept-group fraction.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trl.import_utils as _trl_import_utils
from transformers import AutoConfig, AutoTokenizer, TrainerCallback


def _fix_trl_availability_flags() -> None:
    """trl 0.24 stores ``transformers.utils.import_utils._is_package_available(name)`` as its ``_X_available`` flags;
    transformers 5 returns a tuple ``(found, None)`` there, which is always truthy, so trl imports e.g. mergekit
    (absent) when loading ``GRPOTrainer``. Reduce those tuples to their boolean before the trainer is imported."""
    for name, value in list(vars(_trl_import_utils).items()):
        if name.startswith("_") and name.endswith("_available") and isinstance(value, tuple):
            setattr(_trl_import_utils, name, bool(value[0]))


_fix_trl_availability_flags()

from trl import GRPOConfig, GRPOTrainer  # (imported after the flag fix)

from gream_pipeline.semantic_ids import code_of, first_id, is_token
from reward_fns.srpo import (
    DEFAULT_BETA,
    grpo_advantages_batched,
    id_tokens,
    keep_mask,
    parse_answer,
    residual_reward,
    srpo_advantages_batched,
)

ADVANTAGES = ("srpo", "grpo")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
LOG_FILE = "log.jsonl"
PLOT_FILE = "reward_kept.png"
SUMMARY_FILE = "summary.json"


# ----------------------------------------------------------------------------------------------- reward


def _completion_text(completion: Any) -> str:
    """TRL passes conversational completions as ``[{"role": "assistant", "content": …}]``, else a string."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, Mapping))
    return completion if isinstance(completion, str) else ""


def _generated_text(completion: Any, continued: str) -> str:
    """The sampled text of a completion: TRL prepends the continued final assistant message of a conversational
    prompt (the dataset column ``continued``) to its completions."""
    text = _completion_text(completion)
    return text[len(continued):] if continued and text.startswith(continued) else text


def srpo_reward(beta: float = DEFAULT_BETA,
                answer: Callable[[object], list[str] | None] = parse_answer) -> Callable[..., list[float]]:
    """TRL reward function r_rs = (ℓ/H)^β (eqs. 13–14) against the dataset column ``ground_truth`` (an ID string);
    ``answer`` reads the predicted ID tokens from a completion (:func:`~gream_pipeline.semantic_ids.first_id` for
    continuation rows)."""

    def srpo_residual_reward(completions: Sequence[Any], ground_truth: Sequence[Any],
                             continued: Sequence[str] | None = None, **_: Any) -> list[float]:
        heads = continued if continued is not None else [""] * len(completions)
        return [
            residual_reward(answer(_generated_text(c, head)), id_tokens(gt), beta)
            for c, gt, head in zip(completions, ground_truth, heads, strict=True)
        ]

    return srpo_residual_reward


# ----------------------------------------------------------------------------------------------- config


@dataclass(kw_only=True)
class SRPOConfig(GRPOConfig):
    """``GRPOConfig`` plus the SRPO fields, which are required: their defaults, and GREAM's values for TRL's own
    fields, live in ``recipes/config.yaml`` (``rl.trl``; the rl stage passes ``advantage``). Fields not set there
    keep TRL's defaults.

    Paper values (§6.1.3): G = ``num_generations`` = 10, ``temperature`` 0.5, ``top_p`` 1.0, ``learning_rate`` 4e-6,
    ``weight_decay`` 0.01, KL-loss coefficient ``beta`` 0.001, β of eq. 14 ``reward_beta`` 0.5; the loss is eq. 22's
    sequence-mean (``loss_type="grpo"``). The paper's batch 256 prompts / mini-batch 128 maps onto TRL as
    ``per_device_train_batch_size`` = 1280 rollouts with ``steps_per_generation`` = 2 (GPU scale).
    ``per_device_train_batch_size`` counts *rollouts* (prompts × G). ``bf16=True`` is bf16 autocast over fp32 weights
    (``use_cpu`` is then switched on when there is no GPU). For a small model trained from scratch a larger
    ``learning_rate`` (1e-5 – 1e-4) is needed than the paper's 4e-6 for a 4B model.
    """

    advantage: str = field(metadata={"help": "srpo (eqs. 15–21) | grpo (eq. 10, comparison run)"})
    srpo_k: int = field(metadata={"help": "k of ρ(c; G, k), eq. 15 (not stated in the paper)"})
    reward_beta: float = field(metadata={"help": "β of r_rs = (ℓ/H)^β, eq. 14"})
    exact_tol: float = field(metadata={"help": "rollout is exact iff reward ≥ 1 − exact_tol"})
    adv_eps: float = field(metadata={"help": "ε of (r − mean) / (std + ε), as verl's GRPO"})
    continuation_levels: int = field(default=0, metadata={
        "help": "direct-mode continuation rows: answer = the first ID, loss on its tokens only (its code levels; "
                "0: off). Set by the rl stage, not a recipe knob"})
    torch_num_threads: int | None = field(
        metadata={"help": "torch intra-op threads during train_srpo (None: unchanged); 1 avoids OpenMP spin "
                  "contention when other processes share the cores"}
    )
    stop_after_empty_batches: int | None = field(
        metadata={"help": "stop training after this many consecutive generation batches in which the zero-variance "
                  "filter kept no group: such a batch gives no policy gradient, so more of them only sample "
                  "(None: train every step)"}
    )

    def __post_init__(self) -> None:
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"advantage must be one of {ADVANTAGES}, got {self.advantage!r}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.use_liger_loss:
            raise ValueError("SRPOTrainer does not support use_liger_loss (its loss ignores the group filter)")
        if self.continuation_levels < 0:
            raise ValueError(f"continuation_levels must be >= 0, got {self.continuation_levels}")
        if self.srpo_k < 1:
            raise ValueError(f"srpo_k must be >= 1, got {self.srpo_k}")
        if self.stop_after_empty_batches is not None and self.stop_after_empty_batches < 1:
            raise ValueError(f"stop_after_empty_batches must be >= 1 or None, got {self.stop_after_empty_batches}")
        if self.bf16 and not torch.cuda.is_available():
            self.use_cpu = True
        if self.model_init_kwargs is None:  # fp32 master weights; bf16=True means autocast, not bf16 weights
            self.model_init_kwargs = {"dtype": "float32"}
        super().__post_init__()


def make_config(cfg: SRPOConfig | Mapping[str, Any], output_dir: str | os.PathLike) -> SRPOConfig:
    """An :class:`SRPOConfig` from a config object or a mapping of its field names (e.g. the ``rl.trl`` section plus
    ``advantage``)."""
    if isinstance(cfg, SRPOConfig):
        return cfg
    fields = dict(cfg)
    fields.setdefault("output_dir", str(output_dir))
    return SRPOConfig(**fields)


# ----------------------------------------------------------------------------------------------- trainer


def _load_policy(model_dir: str, init_kwargs: Mapping[str, Any]) -> torch.nn.Module:
    """Load the policy as GRPOTrainer would, plus the ``warnings_issued`` dict TRL 0.24 writes into (gone in
    transformers 5)."""
    import transformers

    kwargs = dict(init_kwargs)
    if isinstance(kwargs.get("dtype"), str) and kwargs["dtype"] != "auto":
        kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    config = AutoConfig.from_pretrained(model_dir)
    model = getattr(transformers, config.architectures[0]).from_pretrained(model_dir, **kwargs)
    if not hasattr(model, "warnings_issued"):
        model.warnings_issued = {}
    return model


def token_levels(tokenizer: Any) -> dict[int, int]:
    """Token id → code level (0 for ``<a_*>``, 1 for ``<b_*>``, …) of every ID token in ``tokenizer``'s vocabulary."""
    return {int(idx): code_of(token)[0] for token, idx in tokenizer.get_vocab().items() if is_token(token)}


def continuation_mask(completion_ids: torch.Tensor, levels_of: Mapping[int, int], levels: int) -> torch.Tensor:
    """1 on the tokens of the ID a continuation starts with, 0 after it (same shape as ``completion_ids``).

    The first ``levels`` positions always count (wrong tokens there are what the reward penalises); position
    ``levels`` counts only if it holds a conflict-slot token (level ``levels``); later positions are the next items.
    """
    mask = torch.zeros_like(completion_ids, dtype=torch.long)
    mask[:, :levels] = 1
    if completion_ids.shape[1] > levels:
        slot = [levels_of.get(int(t)) == levels for t in completion_ids[:, levels].tolist()]
        mask[:, levels] = torch.tensor(slot, dtype=torch.long, device=completion_ids.device)
    return mask


#: Reference log-prob given to dropped rollouts: exp(ref − logp) underflows to 0, so their (masked) KL term is finite.
_DROPPED_REF_LOGP = -1e4


def _neutralise_dropped(output: dict[str, Any], drop: torch.Tensor) -> None:
    """Keep the masked-out terms of dropped rollouts finite (0 × finite = 0 in value and gradient).

    TRL's loss pass feeds ``completion_mask`` into the attention mask too, so a dropped rollout's log-probs are then
    computed without its completion as context and differ from the reference/old log-probs computed before the
    mask was applied; exp(ref − logp) or exp(logp − old) could overflow and turn 0 × inf into NaN. Constant
    reference (−1e4) and old (0) log-probs for those rows rule that out. Kept rollouts are untouched.
    """
    if not bool(drop.any()):
        return
    if output.get("ref_per_token_logps") is not None:
        output["ref_per_token_logps"][drop] = _DROPPED_REF_LOGP
    if output.get("old_per_token_logps") is not None:
        output["old_per_token_logps"][drop] = 0.0


class SRPOTrainer(GRPOTrainer):
    """TRL ``GRPOTrainer`` with SRPO rewards, advantages and the zero-variance group filter (see module docstring).

    ``reward_funcs`` defaults to :func:`srpo_reward` (``args.reward_beta``). With other reward functions the exact
    flag is still "weighted reward sum ≥ 1 − exact_tol", which is meaningful only for r_rs.
    After each generation batch :attr:`last_batch` holds numpy arrays ``rewards``, ``exact``, ``group``, ``keep``,
    ``advantages`` (all rollouts, TRL order) and :attr:`srpo_totals` accumulates rollout/group counts.
    """

    args: SRPOConfig

    def __init__(self, model: Any, reward_funcs: Any = None, args: SRPOConfig | None = None, **kwargs: Any) -> None:
        if args is None:
            raise ValueError("SRPOTrainer needs an SRPOConfig")
        if not isinstance(args, SRPOConfig):
            raise TypeError(f"args must be an SRPOConfig, got {type(args).__name__}")
        if isinstance(model, (str, os.PathLike)):
            model_dir = str(model)
            model = _load_policy(model_dir, args.model_init_kwargs or {})
            if kwargs.get("processing_class") is None:
                kwargs["processing_class"] = AutoTokenizer.from_pretrained(model_dir, truncation_side="left")
        elif not hasattr(model, "warnings_issued"):
            model.warnings_issued = {}
        if reward_funcs is None:
            reward_funcs = [srpo_reward(args.reward_beta, first_id if args.continuation_levels else parse_answer)]
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, **kwargs)
        self._token_levels = token_levels(self.processing_class) if args.continuation_levels else {}
        self._srpo_rewards_per_func: torch.Tensor | None = None
        self.last_batch: dict[str, np.ndarray] | None = None
        self.srpo_totals = {"rollouts": 0, "exact": 0, "groups": 0, "kept_groups": 0, "reward_sum": 0.0}
        self.empty_streak = 0  # consecutive training generation batches without a kept group
        self.stopped_early: dict[str, int] | None = None
        if self.args.stop_after_empty_batches:
            self.add_callback(EmptyBatchStop(self))

    # -- TRL hooks ------------------------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """TRL's rewards (gathered over processes), remembered for :meth:`_generate_and_score_completions`."""
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._srpo_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        """TRL's generation/scoring, then SRPO (or eq. 10) advantages and the group filter replace TRL's."""
        output = super()._generate_and_score_completions(inputs)
        rpf = self._srpo_rewards_per_func
        weights = self.reward_weights.to(rpf.device).unsqueeze(0)
        rewards = (rpf * weights).nansum(dim=1).detach().to("cpu", torch.float64).numpy()
        batch = self.srpo_batch(rewards)

        device = output["advantages"].device
        local = slice(self.accelerator.process_index * len(inputs), (self.accelerator.process_index + 1) * len(inputs))
        keep_local = torch.as_tensor(batch["keep"][local], device=device)
        output["advantages"] = torch.as_tensor(batch["advantages"][local], dtype=torch.float32, device=device)
        mask = output["completion_mask"] * keep_local.unsqueeze(1).to(output["completion_mask"].dtype)
        if self.args.continuation_levels:
            mask = mask * continuation_mask(output["completion_ids"], self._token_levels,
                                            self.args.continuation_levels).to(mask.dtype)
        output["completion_mask"] = mask
        _neutralise_dropped(output, ~keep_local)
        n_kept = int(batch["keep"].sum())
        output["srpo_loss_scale"] = torch.tensor(rewards.size / max(n_kept, 1), dtype=torch.float32, device=device)
        if self.loss_type == "dapo":
            kept_tokens = self.accelerator.gather(mask.sum().reshape(1)).sum()
            output["num_items_in_batch"] = kept_tokens.clamp(min=1)

        self._record(batch)
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's loss; for sequence-normalised loss types the mean runs over kept rollouts only (N / N_kept)."""
        loss = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if self.loss_type in ("grpo", "dr_grpo") and "srpo_loss_scale" in inputs:
            loss = loss * inputs["srpo_loss_scale"]
        return loss

    # -- SRPO -----------------------------------------------------------------------------------------------

    def srpo_batch(self, rewards: np.ndarray) -> dict[str, np.ndarray]:
        """Groups, exact flags, keep mask (eq. 22) and advantages (eqs. 15–21 or 10; 0 where dropped)."""
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
        group = np.arange(rewards.size) // self.num_generations
        exact = rewards >= 1.0 - self.args.exact_tol
        keep = keep_mask(rewards, group)
        if self.args.advantage == "srpo":
            adv = srpo_advantages_batched(rewards, exact, group, self.args.srpo_k, self.args.adv_eps)
        else:
            adv = grpo_advantages_batched(rewards, group, self.args.adv_eps)
        adv = np.where(keep, adv, 0.0)
        return {"rewards": rewards, "exact": exact, "group": group, "keep": keep, "advantages": adv}

    def _record(self, batch: dict[str, np.ndarray]) -> None:
        mode = "train" if self.model.training else "eval"
        n_groups = int(batch["group"].max()) + 1 if batch["group"].size else 0
        kept_groups = len(set(batch["group"][batch["keep"]].tolist()))
        metrics = self._metrics[mode]
        metrics["srpo/reward_mean"].append(float(batch["rewards"].mean()))
        metrics["srpo/exact_rate"].append(float(batch["exact"].mean()))
        metrics["srpo/kept_group_frac"].append(kept_groups / max(n_groups, 1))
        metrics["srpo/groups"].append(float(n_groups))
        kept_adv = batch["advantages"][batch["keep"]]
        metrics["srpo/adv_abs_mean"].append(float(np.abs(kept_adv).mean()) if kept_adv.size else 0.0)
        advs = self._logs["advantages"]  # TRL's completion table: show the advantages actually used
        for _ in range(min(batch["advantages"].size, len(advs))):
            advs.pop()
        advs.extend(batch["advantages"].tolist())
        self.last_batch = batch
        if mode == "train":
            t = self.srpo_totals
            t["rollouts"] += int(batch["rewards"].size)
            t["exact"] += int(batch["exact"].sum())
            t["groups"] += n_groups
            t["kept_groups"] += kept_groups
            t["reward_sum"] += float(batch["rewards"].sum())
            self.empty_streak = 0 if kept_groups else self.empty_streak + 1


class EmptyBatchStop(TrainerCallback):
    """Ends training once ``stop_after_empty_batches`` consecutive generation batches kept no group (the trainer
    records the step in ``stopped_early``)."""

    def __init__(self, trainer: SRPOTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        streak = self.trainer.empty_streak
        if streak >= self.trainer.args.stop_after_empty_batches and not control.should_training_stop:
            control.should_training_stop = True
            self.trainer.stopped_early = {"at_step": int(state.global_step), "empty_batches": streak}


# ----------------------------------------------------------------------------------------------- logging, plot


_LOG_KEYS = {
    "loss": "loss",
    "kl": "kl",
    "srpo/reward_mean": "reward_mean",
    "srpo/exact_rate": "exact_rate",
    "srpo/kept_group_frac": "kept_group_frac",
    "srpo/groups": "groups",
    "srpo/adv_abs_mean": "adv_abs_mean",
    "entropy": "entropy",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "completions/mean_length": "completion_len",
}


class StepLogger(TrainerCallback):
    """Appends one JSON line per optimizer step (TRL's averaged metrics, renamed) and keeps the rows."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []
        self._t0 = 0.0
        self._dt = float("nan")

    def on_train_begin(self, args, state, control, **kwargs):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._dt = time.perf_counter() - self._t0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        row: dict[str, float] = {"step": int(state.global_step)}
        for src, dst in _LOG_KEYS.items():
            if src in logs:
                row[dst] = float(logs[src])
        row["step_time"] = round(self._dt, 4)
        self.rows.append(row)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def plot_training(rows: Sequence[Mapping[str, float]], path: Path, title: str = "") -> None:
    """PNG: mean reward and exact rate (top) and kept-group fraction (bottom) per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(r["step"], r[key]) for r in rows if key in r and not math.isnan(r[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.8), sharex=True)
    top.plot(*series("reward_mean"), marker=".", label="mean reward r_rs")
    top.plot(*series("exact_rate"), marker=".", label="exact-match rate")
    top.set_ylabel("reward")
    top.set_ylim(-0.02, 1.02)
    top.legend(fontsize=8)
    bottom.plot(*series("kept_group_frac"), marker=".", color="tab:green")
    bottom.set_ylabel("kept-group fraction")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel("step")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- entry point


def _window_mean(rows: Sequence[Mapping[str, float]], key: str, first: bool) -> float | None:
    vals = [r[key] for r in rows if key in r]
    if not vals:
        return None
    k = max(1, len(vals) // 5)
    part = vals[:k] if first else vals[-k:]
    return float(np.mean(part))


def _summary(trainer: SRPOTrainer, rows: list[dict], runtime: float, out_dir: Path) -> dict[str, Any]:
    t = trainer.srpo_totals
    times = [r["step_time"] for r in rows if not math.isnan(r.get("step_time", float("nan")))]
    return {
        "advantage": trainer.args.advantage,
        "steps": int(trainer.state.global_step),
        "seed": int(trainer.args.seed),
        "train_runtime_s": round(runtime, 3),
        "sec_per_step": round(float(np.median(times)), 4) if times else None,
        "rollouts": t["rollouts"],
        "groups": t["groups"],
        "kept_groups": t["kept_groups"],
        "filtered_group_frac": 1.0 - t["kept_groups"] / t["groups"] if t["groups"] else None,
        "reward_mean": t["reward_sum"] / t["rollouts"] if t["rollouts"] else None,
        "exact_rate": t["exact"] / t["rollouts"] if t["rollouts"] else None,
        "reward_first": _window_mean(rows, "reward_mean", True),
        "reward_last": _window_mean(rows, "reward_mean", False),
        "final_loss": rows[-1].get("loss") if rows else None,
        "final_kl": rows[-1].get("kl") if rows else None,
        "max_steps": int(trainer.state.max_steps),
        "stopped_early": trainer.stopped_early,  # {at_step, empty_batches} when no group was kept for that long
        "model_dir": "model",  # paths relative to out_dir (a stage's temporary directory is renamed afterwards)
        "log": LOG_FILE,
        "plot": PLOT_FILE,
    }


def train_srpo(
    model_dir: str | os.PathLike,
    records: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    cfg: SRPOConfig | Mapping[str, Any],
    reward_funcs: Any = None,
    trainer_cls: type[SRPOTrainer] | None = None,
) -> dict[str, Any]:
    """Train with SRPO (or ``advantage="grpo"``) on prompt records (:func:`gream_pipeline.rl.prompts_data.rl_prompts`).

    Writes ``out_dir/model`` (weights + tokenizer), ``log.jsonl`` (per step: reward_mean, exact_rate,
    kept_group_frac, loss, kl, …), ``reward_kept.png`` and ``summary.json``; returns the summary.
    ``cfg``: an :class:`SRPOConfig` or a mapping of its fields (``output_dir`` defaults to ``out_dir/trainer``).
    ``reward_funcs`` (default :func:`srpo_reward`) and ``trainer_cls`` (an :class:`SRPOTrainer` subclass) are
    for experiments and tests.
    """
    from datasets import Dataset

    from gream_pipeline.artifacts import write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = make_config(cfg, out_dir / "trainer")
    if not records:
        raise ValueError("no RL prompt records")
    dataset = Dataset.from_list([dict(r) for r in records])
    logger = StepLogger(out_dir / LOG_FILE)
    threads = torch.get_num_threads()
    if args.torch_num_threads:
        torch.set_num_threads(args.torch_num_threads)
    try:
        cls = trainer_cls or SRPOTrainer
        trainer = cls(model=str(model_dir), reward_funcs=reward_funcs, args=args, train_dataset=dataset,
                      callbacks=[logger])
        t0 = time.perf_counter()
        trainer.train()
        runtime = time.perf_counter() - t0
        trainer.save_model(str(out_dir / "model"))
        trainer.processing_class.save_pretrained(str(out_dir / "model"))
    finally:
        torch.set_num_threads(threads)
    plot_training(logger.rows, out_dir / PLOT_FILE, title=f"{args.advantage.upper()} (G={args.num_generations})")
    summary = _summary(trainer, logger.rows, runtime, out_dir)
    write_json(out_dir / SUMMARY_FILE, summary)
    return summary
