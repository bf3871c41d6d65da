#!/usr/bin/env bash
# Build .venv-recbole/ (repo root) for the RecBole SASRec baseline: recbole 1.2.1, numpy<2, the local torch 2.13.0
# CPU wheel. Separate from .venv/ because RecBole needs numpy < 2 and verl needs numpy >= 2.
# Every pip call passes constraints-recbole.txt (torch==2.13.0), else pip resolves a multi-GB CUDA build.
# setuptools < 81: ray 2.6.3 (imported by recbole.quick_start / trainer) needs pkg_resources.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${RECBOLE_VENV:-$ROOT/.venv-recbole}"
PYTHON="${PYTHON:-python3.11}"
if [[ -f "$VENV/.installed" && "$VENV/.installed" -nt "$HERE/requirements-recbole.txt" && "$VENV/.installed" -nt "$HERE/constraints-recbole.txt" ]]; then
  echo "$VENV is up to date"; exit 0
fi
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -c "$HERE/constraints-recbole.txt" -r "$HERE/requirements-recbole.txt"
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$VENV/bin/python" -W ignore -c "
import numpy, torch, recbole
from recbole.quick_start import run_recbole
from recbole.model.sequential_recommender import SASRec
assert numpy.__version__ < '2' and torch.__version__.startswith('2.13.0') and recbole.__version__ == '1.2.1'
print('recbole', recbole.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)
"
touch "$VENV/.installed"
