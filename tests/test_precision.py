"""``auto`` precision: bf16 exactly where the CPU flags name native bf16 matmul, explicit values kept."""

import platform

import pytest

from gream_pipeline import precision

FLAGS_OF = precision.cpu_flags.__wrapped__  # the uncached reader, for a given cpuinfo file


def fake_cpu(monkeypatch, tmp_path, flags: str, machine: str = "x86_64") -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    monkeypatch.setattr(precision, "cpu_flags", lambda: FLAGS_OF(str(info)))
    monkeypatch.setattr(platform, "machine", lambda: machine)


@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx avx2 fma", False),                      # AVX2 only (e.g. AMD Zen 3): fp32
    ("fpu avx2 avx512f avx512bw avx512_vnni", False),      # AVX-512 without its bf16 extension: fp32
    ("fpu avx2 avx512f avx512_bf16", True),                # AVX512-BF16 (e.g. AMD Zen 4)
    ("fpu avx2 avx512f amx_tile amx_bf16 amx_int8", True),  # Intel AMX
])
def test_auto_follows_the_cpu_flags(monkeypatch, tmp_path, flags, native):
    fake_cpu(monkeypatch, tmp_path, flags)
    assert precision.native_bf16("cpu") is native
    assert precision.resolve_bf16("auto") is native
    assert precision.resolve_dtype("auto") == ("bfloat16" if native else "float32")
    assert precision.resolve_dtype("auto", bf16="bf16", fp32="fp32") == ("bf16" if native else "fp32")


def test_explicit_values_are_kept(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, "avx2")
    assert precision.resolve_bf16(True) is True and precision.resolve_bf16(False) is False
    assert precision.resolve_dtype("bfloat16") == "bfloat16" and precision.resolve_dtype("float16") == "float16"
    with pytest.raises(ValueError, match="true, false or auto"):
        precision.resolve_bf16("yes")


def test_non_x86_and_unreadable_cpuinfo_resolve_to_fp32(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, tmp_path, "amx_bf16", machine="aarch64")
    assert precision.native_bf16("cpu") is False
    assert FLAGS_OF(str(tmp_path / "missing")) == frozenset()


def test_a_cuda_device_this_host_cannot_see_counts_as_native():
    import torch

    expected = not torch.cuda.is_available() or torch.cuda.is_bf16_supported()
    assert precision.native_bf16("cuda:0") is expected and precision.resolve_bf16("auto", "cuda") is expected

