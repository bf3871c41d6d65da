#!/usr/bin/env bash
# Build the tier-1 GPU-smoke wheel bundle (locks/gpu-smoke-bundle.txt) into DIR (default build/gpu-bundle):
#   bash locks/bundle.sh [DIR]      BUNDLE_PY=3.11 (host Python), BUNDLE_LIMIT_MIB=63 (64 MiB minus the repo)
# Then carry DIR with the repo and run `bash DIR/install.sh [VENV]` on the host, then
# `VENV/bin/python bench/gpu_smoke.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build/gpu-bundle}
PYV=${BUNDLE_PY:-3.11}
LIMIT=${BUNDLE_LIMIT_MIB:-63}
PY=${PYTHON:-python3}
rm -rf "$DIR"; mkdir -p "$DIR"
grep -E '^[A-Za-z0-9]' locks/gpu-smoke-bundle.txt > "$DIR/requirements.txt"
for extra in ${BUNDLE_HOST_LACKS:-}; do echo "$extra" >> "$DIR/requirements.txt"; done
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$PYV" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform linux_x86_64 --implementation cp -d "$DIR" -r "$DIR/requirements.txt"
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$DIR" antlr4-python3-runtime==4.9.3 \
  ./compat/torchaudio_stub
cat > "$DIR/install.sh" <<'SH'
#!/usr/bin/env bash
# Install the bundle without network into VENV (default .venv-smoke), a venv that also sees the host Python's
# packages (CUDA torch). PYTHON=... picks the host interpreter. Then: VENV/bin/python bench/gpu_smoke.py
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${1:-.venv-smoke}
PY=${PYTHON:-python3}
"$PY" -m venv --system-site-packages "$VENV"
wheels=("$HERE"/*.whl)
if "$VENV/bin/python" -c "import torchaudio" 2>/dev/null; then
  wheels=($(printf '%s\n' "${wheels[@]}" | grep -v gream_torchaudio_stub))
fi
missing=$("$VENV/bin/python" -c "
import importlib.util as u
print(' '.join(m for m in ('torch', 'numpy', 'pyarrow', 'pandas', 'dateutil', 'huggingface_hub', 'safetensors', 'yaml',
                           'regex', 'tqdm', 'jinja2', 'pydantic', 'rich', 'filelock', 'packaging') if u.find_spec(m) is None))")
if [[ -n "$missing" ]]; then
  echo "the host Python lacks: $missing (install them, or rebuild the bundle with BUNDLE_HOST_LACKS=...)"; exit 1
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps "${wheels[@]}"
"$VENV/bin/python" -c "import torch, transformers, llamafactory.train.tuner; print('bundle ok: torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
SH
chmod +x "$DIR/install.sh"
size=$(du -sm "$DIR" | cut -f1)
bytes=$(du -sb "$DIR" | cut -f1)
echo "bundle $DIR: $(ls "$DIR"/*.whl | wc -l) wheels, $((bytes / 1024 / 1024)) MiB (limit $LIMIT MiB) for CPython $PYV"
ls -S "$DIR"/*.whl | head -5 | while read -r f; do echo "  $(du -k "$f" | cut -f1) KiB  $(basename "$f")"; done
if (( bytes > LIMIT * 1024 * 1024 )); then echo "bundle over $LIMIT MiB"; exit 1; fi
