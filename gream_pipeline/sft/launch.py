"""Process and batch geometry of the SFT launch: how many data-parallel processes LLaMA-Factory runs on this host,
and per-device batch × gradient accumulation such that every optimizer step consumes exactly one block of the
emitted curriculum file (pure functions; :func:`count_devices` is the only one that asks torch).

**What LLaMA-Factory 0.9.5 does** (``llamafactory/launcher.py``, ``extras/misc.py:get_device_count``):
``llamafactory-cli train`` starts ``torchrun --nnodes $NNODES --nproc_per_node $NPROC_PER_NODE`` (default: every
visible device) when ``FORCE_TORCHRUN`` is set or more than one device is visible (unless ``USE_RAY``/``USE_KT``);
otherwise it trains in its own process, where transformers' ``Trainer`` wraps the model in ``DataParallel`` over
every visible GPU (``TrainingArguments.n_gpu``). The time-budget path (:mod:`.budget`) is always that single
process. DeepSpeed needs torchrun even for one process (LF's parser: "Please use FORCE_TORCHRUN=1 to launch
DeepSpeed training"). Either way the global batch is per-device batch × accumulation × processes (× GPUs per
process under DataParallel), while the curriculum file is cut into blocks of the *emitted* batch B
(``sft.per_device_batch × sft.grad_accum × sft.world_size``): any other product makes optimizer steps straddle
alignment/reasoning blocks.

**The plan** (:func:`plan_launch`):

- processes W: on CPU (``sft.use_cpu`` or no accelerator) ``sft.world_size`` (gloo under torchrun when > 1; GPUs
  are hidden from the child); on accelerators ``min(sft.world_size, visible devices)`` — the user's world size
  when the host has the devices, fewer processes when it has fewer;
- per-device batch p: the largest divisor of B / W that is ≤ ``sft.per_device_batch`` (the memory bound), and
  accumulation a = B / (W · p); with W = ``sft.world_size`` that is exactly the configured pair. B not divisible
  by W is refused;
- the child's environment: W > 1 (or DeepSpeed): ``FORCE_TORCHRUN=1``, ``NPROC_PER_NODE=W``, ``NNODES=1``; W = 1:
  no torchrun, and on a host with several GPUs ``CUDA_VISIBLE_DEVICES`` names one of them, so that the single
  process cannot become DataParallel; the environment's ``bin/`` goes first on ``PATH`` (LF calls ``torchrun``
  by name);
- refused with a :class:`GreamError` naming the fix: ``USE_RAY``/``USE_KT`` (another launcher decides the world
  size), ``NNODES`` > 1 (gream launches one host; run the emitted ``sft.yaml`` with ``llamafactory-cli`` on every
  node with ``sft.world_size`` = all processes), ``NPROC_PER_NODE`` set to a value other than W, DeepSpeed or
  W > 1 on the in-process time-budget path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gream_pipeline.errors import GreamError

TRUE = ("true", "y", "1")  # LLaMA-Factory's is_env_enabled


def _enabled(env: Mapping[str, str], key: str) -> bool:
    return str(env.get(key, "0")).lower() in TRUE


def visible_cuda_ids(env: Mapping[str, str]) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` as CUDA reads them (up to the first invalid one), None if unset."""
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    ids = []
    for part in (p.strip() for p in raw.split(",")):
        if not part or part.startswith("-"):
            break
        ids.append(part)
    return ids


def count_devices() -> int:
    """CUDA devices torch sees in this process (``CUDA_VISIBLE_DEVICES`` applied), what LF's launcher counts."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def split_batch(global_batch: int, world_size: int, max_per_device: int) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) with per_device × accumulation × world_size = global_batch and the
    largest per-device batch ≤ ``max_per_device``; GreamError when ``world_size`` does not divide the batch."""
    if global_batch < 1 or world_size < 1 or max_per_device < 1:
        raise GreamError(f"batch geometry needs positive sizes (global batch {global_batch}, world size "
                         f"{world_size}, per-device batch {max_per_device})")
    if global_batch % world_size:
        raise GreamError(f"the curriculum was emitted in global batches of {global_batch} examples, which "
                         f"{world_size} processes cannot share evenly; set sft.world_size (or sft.per_device_batch "
                         f"× sft.grad_accum) so that the global batch is a multiple of the processes")
    per_rank = global_batch // world_size
    per_device = max(p for p in range(1, min(per_rank, max_per_device) + 1) if per_rank % p == 0)
    return per_device, per_rank // per_device


@dataclass(frozen=True)
class LaunchPlan:
    """Processes, batch geometry and child-environment changes of one SFT launch (``env``: None removes)."""

    global_batch: int
    world_size: int
    per_device_batch: int
    grad_accum: int
    devices: int
    device: str
    torchrun: bool
    env: dict[str, str | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def child_env(self, base: Mapping[str, str], python_bin: Path | str | None = None) -> dict[str, str]:
        """``base`` with the plan's variables set/removed and ``python_bin`` first on ``PATH``."""
        env = dict(base)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if python_bin is not None:
            env["PATH"] = os.pathsep.join([str(python_bin)] + ([env["PATH"]] if env.get("PATH") else []))
        return env

    def to_dict(self) -> dict:
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


def plan_launch(*, global_batch: int, per_device_batch: int, grad_accum: int, world_size: int, use_cpu: bool,
                devices: int, env: Mapping[str, str], deepspeed: bool = False, in_process: bool = False
                ) -> LaunchPlan:
    """The launch of an SFT run whose curriculum file was cut into ``global_batch`` blocks, on a host where LF sees
    ``devices`` CUDA devices (:func:`count_devices`), with the user's ``sft.*`` values; see the module docstring.
    ``in_process``: the time-budget path (LF's ``run_exp`` in one process, no torchrun)."""
    if global_batch != per_device_batch * grad_accum * world_size:
        raise GreamError(f"emitted batch {global_batch} != sft.per_device_batch × sft.grad_accum × sft.world_size "
                         f"= {per_device_batch}×{grad_accum}×{world_size}")
    for key in ("USE_RAY", "USE_KT"):
        if _enabled(env, key):
            raise GreamError(f"{key}=1 in the environment: LLaMA-Factory would launch through another backend whose "
                             f"world size gream cannot match to the curriculum batch; unset it")
    if int(env.get("NNODES", "1") or 1) > 1:
        raise GreamError(f"NNODES={env['NNODES']}: gream launches SFT on one host; for several nodes use "
                         f"sft.launch=emit with sft.world_size = all processes and run `llamafactory-cli train "
                         f"<run>/sft/sft.yaml` on every node (NNODES, NODE_RANK, MASTER_ADDR set there)")
    notes: list[str] = []
    cpu = bool(use_cpu) or devices == 0
    if cpu:
        processes = world_size
        device = "cpu"
    else:
        processes = min(world_size, devices)
        device = "cuda"
        if processes < world_size:
            notes.append(f"{devices} visible device(s) < sft.world_size={world_size}: {processes} process(es), "
                         f"accumulation raised to keep the global batch {global_batch}")
        elif devices > world_size:
            notes.append(f"{devices} visible devices, sft.world_size={world_size}: using {world_size}")
    user_nproc = env.get("NPROC_PER_NODE")
    if user_nproc not in (None, "") and int(user_nproc) != processes:
        raise GreamError(f"NPROC_PER_NODE={user_nproc} in the environment but the launch needs {processes} "
                         f"process(es) (sft.world_size={world_size}, {devices} visible device(s)); unset it or set "
                         f"sft.world_size={user_nproc}")
    if in_process and (processes > 1 or deepspeed):
        raise GreamError("sft.time_budget_min runs LLaMA-Factory in one process (no torchrun): it needs "
                         "sft.world_size=1 and no DeepSpeed config (LF refuses DeepSpeed without torchrun); drop "
                         "sft.time_budget_min for a multi-process or DeepSpeed run")
    per_device, accum = split_batch(global_batch, processes, per_device_batch)
    if (per_device, accum) != (per_device_batch, grad_accum):
        notes.append(f"per-device batch × accumulation {per_device_batch}×{grad_accum} → {per_device}×{accum} for "
                     f"{processes} process(es)")
    torchrun = processes > 1 or bool(deepspeed)
    child: dict[str, str | None] = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": str(processes), "NNODES": "1"} \
        if torchrun else {"FORCE_TORCHRUN": None, "NPROC_PER_NODE": None}
    ids = visible_cuda_ids(env)
    if cpu and devices > 0:
        child["CUDA_VISIBLE_DEVICES"] = ""  # CPU training: LF must not count (and torchrun over) the GPUs
        notes.append(f"CPU run on a host with {devices} GPU(s): GPUs hidden from the child")
    elif not cpu and devices > processes:
        keep = (ids if ids is not None else [str(i) for i in range(devices)])[:processes]
        child["CUDA_VISIBLE_DEVICES"] = ",".join(keep)  # one process never sees a second GPU (no DataParallel)
    return LaunchPlan(global_batch=global_batch, world_size=processes, per_device_batch=per_device,
                      grad_accum=accum, devices=devices, device=device, torchrun=torchrun, env=child,
                      notes=tuple(notes))
