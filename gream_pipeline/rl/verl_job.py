"""verl job composition for SRPO on GPU hosts, its hand-over to the pipeline, and the CPU-side check of that job
(``make rl-check``).

The job is verl's own ``ppo_trainer`` config + ``recipes/verl/srpo_trainer.yaml`` (the SRPO deltas) + the overrides
built by :func:`job_overrides` (our RL parquet files, the SFT checkpoint, where verl writes inside the rl stage's
output, gream's names) + ``rl.verl_overrides`` (hardware knobs). The rl stage launches exactly that list and the
rl_check stage composes exactly that list through Hydra, then :func:`check` runs verl's ``validate_config``, loads
the reward function through verl's loader, runs verl's real ``compute_advantage`` dispatch with the ``srpo``
estimator on a batch scored with that reward function, and asserts the hand-over facts of :func:`handover`.
verl's trainer itself cannot run without GPUs (it has no CPU platform and its rollouts need vLLM/SGLang/TRT-LLM).

**Hand-over** (verl 0.9.1, read from its sources). Everything verl writes lives in the rl stage's output (the
temporary folder while the stage runs, committed with it):

- ``verl/checkpoints/`` is ``trainer.default_local_dir``: the v1 trainer saves ``global_step_<N>/actor/`` when
  ``trainer.save_freq > 0`` and the step is a multiple of it *or the last step* (``trainer_base.fit``), and writes
  ``latest_checkpointed_iteration.txt``. With ``hf_model`` in ``actor.checkpoint.save_contents`` the FSDP
  checkpoint manager also gathers the full state dict on rank 0 and writes a Hugging Face model + tokenizer to
  ``global_step_<N>/actor/huggingface/`` (``FSDPCheckpointManager.save_checkpoint``). :func:`collect_model` links
  the last one to ``model/``, where the eval stage reads ``rl/model``.
- ``trainer.logger`` is ``[console, tensorboard, file]`` (no ``wandb``: it needs a key and the network). verl's
  TensorBoard adapter writes to ``$TENSORBOARD_DIR`` and its file logger to ``$VERL_FILE_LOGGER_PATH``; both are set
  in the Ray runtime env of the job (``ray_kwargs.ray_init.runtime_env.env_vars``, so the trainer actor sees them
  also on a Ray cluster) and in the launcher's own environment: ``verl/tensorboard/`` and ``verl/metrics.jsonl``.
- Hydra's own output folder of ``main_ppo`` is ``verl/hydra/`` (not ``outputs/<date>`` in the working directory).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gream_pipeline.errors import GreamError

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes" / "verl"
RECIPE = "srpo_trainer"
PROJECT_NAME = "gream"

# where verl writes, relative to the rl stage's output folder
CHECKPOINTS = "verl/checkpoints"
TENSORBOARD = "verl/tensorboard"
METRICS = "verl/metrics.jsonl"
HYDRA_DIR = "verl/hydra"
MODEL = "model"
RUNTIME_ENV = "ray_kwargs.ray_init.runtime_env.env_vars"
ENV_PATHS = {"TENSORBOARD_DIR": TENSORBOARD, "VERL_FILE_LOGGER_PATH": METRICS}

#: verl trackers that need neither a key nor the network (``verl.utils.tracking.Tracking``)
OFFLINE_LOGGERS = frozenset({"console", "tensorboard", "file"})
#: paper eq. 22: (1/G) sum_i (1/|o_i|) sum_t ...: token mean per sequence, then the mean over sequences
PAPER_LOSS_AGG_MODE = "seq-mean-token-mean"
HF_STRATEGIES = ("fsdp", "fsdp2")  # the engines whose checkpoint manager writes ``huggingface/`` (hf_model)


def _quote(value) -> str:
    """A Hydra override value as a quoted string (paths may hold characters the override grammar reserves)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def job_overrides(train_files: Sequence[Path], val_files: Sequence[Path], model_dir: Path, out_dir: Path,
                  verl: Mapping | None = None, experiment_name: str = "gream") -> list[str]:
    """Hydra overrides that point the SRPO recipe at our data and checkpoint and put everything verl writes inside
    ``out_dir`` (the rl stage's output: the temporary folder to launch during the stage, the final one for
    ``verl/overrides.txt``), plus ``verl`` key → value knobs. The caller appends ``rl.verl_overrides``."""
    files = lambda paths: "[" + ",".join(_quote(p) for p in paths) + "]"  # noqa: E731
    out_dir = Path(out_dir)
    overrides = [
        f"data.train_files={files(train_files)}",
        f"data.val_files={files(val_files)}",
        f"actor_rollout_ref.model.path={_quote(model_dir)}",
        f"trainer.default_local_dir={_quote(out_dir / CHECKPOINTS)}",
        f"trainer.project_name={PROJECT_NAME}",
        f"trainer.experiment_name={_quote(experiment_name)}",
        *(f"++{RUNTIME_ENV}.{var}={_quote(out_dir / rel)}" for var, rel in ENV_PATHS.items()),
        f"hydra.run.dir={_quote(out_dir / HYDRA_DIR)}",
    ]
    return overrides + [f"{key}={value}" for key, value in dict(verl or {}).items()]


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


def check(config: DictConfig, ground_truths: Sequence[str], seed: int = 0, stage_out: Path | None = None,
          experiment_name: str | None = None) -> dict:
    """Validate the composed job and run verl's advantage dispatch on rollouts near ``ground_truths``; with
    ``stage_out`` (the folder the job's outputs belong to) also assert every hand-over check of
    :func:`handover_checks`, strict (offline loggers, eq. 22 loss aggregation, gream's names included).

    Rollouts per prompt: the exact ID, its prefixes (partial credit), an unparseable text — so groups mix
    exact hits, partial and zero rewards; one group is all-equal (the case ``filter_groups`` drops).
    """
    import verl  # noqa: F401  (loads the gream entry point: registers `srpo`)
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.utils.config import validate_config

    from gream_pipeline.semantic_ids import parse_tokens
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
        tokens = parse_tokens(truth)
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
    report = {"estimator": f"{estimator.__module__}.{estimator.__name__}", "rollouts": len(scores),
            "groups": len(set(uids)), "kept_groups": len(set(uid_arr[kept])), "mean_reward": float(scores.mean()),
            "advantage_max_abs_diff": float(np.abs(got - want).max()), "validate_config": "ok"}
    if stage_out is not None:
        facts = handover(plain, stage_out)
        checks = handover_checks(facts, strict=True, experiment_name=experiment_name)
        failed = [f"{name}: {why}" for name, ok, why in checks if not ok]
        if failed:
            raise GreamError("the verl SRPO job would not hand over: " + "; ".join(failed))
        report.update(handover=facts, handover_checks={name: "ok" for name, _, _ in checks})
    return report


def _within(path, folder) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def _listed(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else [str(value)]


def handover(config: DictConfig, stage_out: Path) -> dict:
    """What the composed job reads and where it writes, for a job whose outputs belong to ``stage_out``."""
    trainer, actor = config.trainer, config.actor_rollout_ref.actor
    files = _listed(config.data.train_files) + _listed(config.data.val_files)
    ckpt = Path(str(trainer.default_local_dir))
    env_node = OmegaConf.select(config, RUNTIME_ENV)
    env = OmegaConf.to_container(env_node, resolve=True) if env_node is not None else {}
    return {
        "stage_dir": str(stage_out),
        "data_files": files,
        "missing_data_files": [f for f in files if not Path(f).is_file()],
        "model_path": str(config.actor_rollout_ref.model.path),
        "checkpoint_dir": str(ckpt),
        "save_freq": int(trainer.save_freq),
        "save_contents": _listed(actor.checkpoint.save_contents),
        "load_contents": _listed(actor.checkpoint.load_contents),
        "strategy": str(actor.strategy),
        "hf_model_from": str(ckpt / "global_step_<last>" / "actor" / "huggingface"),
        "hf_model_to": str(Path(stage_out) / MODEL),
        "logger": _listed(trainer.logger),
        "env_vars": {k: str(v) for k, v in env.items()},
        "loss_agg_mode": str(actor.loss_agg_mode),
        "project_name": str(trainer.project_name),
        "experiment_name": str(trainer.experiment_name),
    }


def handover_checks(facts: Mapping, strict: bool = True, experiment_name: str | None = None
                    ) -> list[tuple[str, bool, str]]:
    """(name, ok, why) of every hand-over condition. Non-strict: what the pipeline needs to run the job and find
    its model (checked before every launch). Strict (``make rl-check``): also no logger that needs the network,
    the paper's loss aggregation (eq. 22) and gream's project/experiment names."""
    stage, loggers = facts["stage_dir"], facts["logger"]
    checks = [
        ("data_files_exist", not facts["missing_data_files"],
         f"verl's RLHFDataset opens these at start-up and they are missing: {facts['missing_data_files']}"),
        ("checkpoint_dir_in_stage", _within(facts["checkpoint_dir"], stage),
         f"trainer.default_local_dir={facts['checkpoint_dir']} is outside the stage output {stage} (the stage "
         f"keeps only its own folder; put runs_dir on shared storage instead)"),
        ("final_step_saved", facts["save_freq"] > 0,
         f"trainer.save_freq={facts['save_freq']}: verl saves only when save_freq > 0 (then also the last step)"),
        ("hf_model_saved", "hf_model" in facts["save_contents"],
         f"actor_rollout_ref.actor.checkpoint.save_contents={facts['save_contents']} has no 'hf_model': no "
         f"Hugging Face model for the eval stage"),
        ("hf_model_engine", facts["strategy"] in HF_STRATEGIES,
         f"actor strategy {facts['strategy']!r}: gream collects the HF model written by the FSDP checkpoint "
         f"manager ({list(HF_STRATEGIES)}); for megatron run `python -m verl.model_merger`"),
        ("logs_in_stage", all(_within(facts["env_vars"].get(var, "."), stage) for var, backend in
                              (("TENSORBOARD_DIR", "tensorboard"), ("VERL_FILE_LOGGER_PATH", "file"))
                              if backend in loggers),
         f"TensorBoard/file logs must go inside {stage}: env_vars {facts['env_vars']}"),
    ]
    if strict:
        online = sorted(set(loggers) - OFFLINE_LOGGERS)
        checks += [
            ("offline_loggers", not online and bool(loggers),
             f"trainer.logger={loggers}: {online or 'none'} need a key and the network (offline: "
             f"{sorted(OFFLINE_LOGGERS)})"),
            ("loss_agg_mode_eq22", facts["loss_agg_mode"] == PAPER_LOSS_AGG_MODE,
             f"actor_rollout_ref.actor.loss_agg_mode={facts['loss_agg_mode']!r}; paper eq. 22 is "
             f"{PAPER_LOSS_AGG_MODE!r}"),
            ("gream_names", facts["project_name"] == PROJECT_NAME
             and (experiment_name is None or facts["experiment_name"] == experiment_name),
             f"trainer.project_name/experiment_name = {facts['project_name']}/{facts['experiment_name']}, "
             f"expected {PROJECT_NAME}/{experiment_name}"),
        ]
    return checks


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same file system: no second copy of a multi-GB model
    except OSError:
        shutil.copy2(src, dst)


def collect_model(checkpoint_dir: Path, model_dir: Path) -> dict:
    """Place the HF model of verl's last saved step (``latest_checkpointed_iteration.txt``) at ``model_dir``."""
    checkpoint_dir = Path(checkpoint_dir)
    tracker = checkpoint_dir / "latest_checkpointed_iteration.txt"
    if not tracker.is_file():
        raise GreamError(f"verl finished without a checkpoint in {checkpoint_dir} (no {tracker.name}; "
                         f"trainer.save_freq must be > 0)")
    step = int(tracker.read_text().strip())
    source = checkpoint_dir / f"global_step_{step}" / "actor" / "huggingface"
    weights = [p for pattern in ("*.safetensors", "*.bin") for p in source.glob(pattern)]
    if not (source / "config.json").is_file() or not weights:
        raise GreamError(f"{source}: no Hugging Face model of step {step} (actor_rollout_ref.actor.checkpoint."
                         f"save_contents needs 'hf_model')")
    model_dir = Path(model_dir)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(source, model_dir, copy_function=_link_or_copy)
    return {"step": step, "source": str(source), "model": str(model_dir)}


def metrics_summary(path: Path) -> dict:
    """Steps logged by verl's file logger and the last step's metrics (empty when the file is absent)."""
    path = Path(path)
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return {}
    return {"logged_steps": len(rows), "last_step": rows[-1].get("step"), "last": rows[-1].get("data", {})}


def launch(overrides: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> None:
    """Run verl's trainer (GPU hosts): ``python -m verl.trainer.main_ppo`` with the SRPO recipe and overrides;
    ``env`` is added to this process's environment (the log locations, for a local Ray cluster)."""
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={RECIPE_DIR}", f"--config-name={RECIPE}",
           *overrides]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, **dict(env or {})})
        for line in proc.stdout:
            log.write(line)
            sys.stderr.write(line)
        if proc.wait() != 0:
            raise GreamError(f"verl training failed (exit {proc.returncode}); see {log_path}")


def run_job(overrides: Sequence[str], stage_out: Path, log_path: Path) -> dict:
    """Compose ``overrides`` (exactly as launched), refuse a job that could not hand over (:func:`handover_checks`,
    non-strict), launch verl, then place its HF model at ``<stage_out>/model``; returns the hand-over summary."""
    config = compose(overrides)
    facts = handover(config, stage_out)
    failed = [f"{name}: {why}" for name, ok, why in handover_checks(facts, strict=False) if not ok]
    if failed:
        raise GreamError("the verl SRPO job would not hand over its model: " + "; ".join(failed))
    launch(overrides, log_path, facts["env_vars"])
    collected = collect_model(Path(facts["checkpoint_dir"]), Path(stage_out) / MODEL)
    metrics = metrics_summary(Path(facts["env_vars"].get("VERL_FILE_LOGGER_PATH", Path(stage_out) / METRICS)))
    return {"model_step": collected["step"], "model_source": os.path.relpath(collected["source"], stage_out),
            "metrics": metrics, "handover": facts}
