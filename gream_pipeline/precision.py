"""The one home of ``auto`` precision: bf16 where the device computes it natively, fp32 elsewhere.

bf16 autocast is ~2x faster than fp32 on CPUs with bf16 matrix instructions (Intel AMX, AVX512-BF16), and tens of
times *slower* on CPUs without them, where every bf16 matmul falls back to a conversion path (bench/results.md:
precision). ``auto`` therefore resolves per host: ``sft.bf16``, ``eval.engine.dtype``, ``rl.validate.engine.dtype``
and ``index.dtype`` accept it (the vLLM engine passes ``auto`` to vLLM, whose own ``auto`` picks the dtype). SFT
records the precision it resolved to (``sft/summary.json``, the run summary), so two hosts that resolve differently
are told apart: their numbers differ by precision, not by load.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})  # x86 /proc/cpuinfo flags of native bf16 matmul


@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (Linux x86 ``flags`` line); empty where unknown."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` (``cpu``, ``cuda``, ``cuda:N``) computes bf16 matmuls natively. A CUDA device that this
    host cannot see (a GPU job's config emitted on a CPU host) counts as native: every GPU since Ampere is."""
    if device.startswith("cuda"):
        import torch

        return bool(not torch.cuda.is_available() or torch.cuda.is_bf16_supported())
    return platform.machine().lower() in ("x86_64", "amd64") and bool(BF16_CPU_FLAGS & cpu_flags())


def resolve_bf16(value: bool | str, device: str = "cpu") -> bool:
    """``true``/``false`` as given; ``auto``: :func:`native_bf16`."""
    if isinstance(value, bool):
        return value
    if value == "auto":
        return native_bf16(device)
    raise ValueError(f"bf16: {value!r} is not true, false or auto")


def resolve_dtype(name: str, device: str = "cpu", bf16: str = "bfloat16", fp32: str = "float32") -> str:
    """A dtype name as given; ``auto``: ``bf16`` where :func:`native_bf16`, else ``fp32`` (names in the caller's
    spelling: ``bfloat16``/``float32`` for torch and vLLM, ``bf16``/``fp32`` for ``index.dtype``)."""
    if name != "auto":
        return name
    return bf16 if native_bf16(device) else fp32
