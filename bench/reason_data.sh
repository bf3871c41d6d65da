#!/usr/bin/env bash
# Reasoning data a small model can learn: the offline synthesizer's two template styles (full, compact) with the
# same number of reasoning rows (MAX_REASON), trained side by side (one thread each) on one shared data + index
# run, then scored on the same test users: direct mode on EVAL_USERS, reasoning mode on the first USERS
# (natural_close_rate, Pass@K, reason_rank, cost per user); then a paired comparison of direct mode.
#   bash bench/reason_data.sh                                  # demo scale, Scientific
#   EXPERIMENT=bench_cpu DATASET=instruments bash bench/reason_data.sh
#   STYLES=compact DATASET=instruments bash bench/reason_data.sh   # one lane (no paired comparison)
#   TAG=r2048 MAX_REASON=2048 bash bench/reason_data.sh             # TAG keeps another setting's runs apart
# Writes runs/rd-<experiment>-<dataset>[-<tag>]-{full,compact}/ and runs/bench/rd-<experiment>-<dataset>[-<tag>].json;
# a lane whose stages are up to date is not re-run (stage manifests).
set -euo pipefail
cd "$(dirname "$0")/.."
EXPERIMENT=${EXPERIMENT:-demo_cpu}
DATASET=${DATASET:-scientific}
USERS=${USERS:-50}
EVAL_USERS=${EVAL_USERS:-1000}
MAX_REASON=${MAX_REASON:-1024}
read -r -a styles <<< "${STYLES:-full compact}"
prefix="rd-${EXPERIMENT}-${DATASET}${TAG:+-$TAG}"
common=("experiment=${EXPERIMENT}" "dataset=${DATASET}" "sft.max_reason=${MAX_REASON}" ${ARGS:-})
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

lane() {
  local style=$1 name="${prefix}-$1"
  mkdir -p "runs/$name"
  for stage in data index; do [[ -d runs/$name/$stage ]] || cp -a "runs/$prefix-data/$stage" "runs/$name/$stage"; done
  for stage in synth sft; do
    .venv/bin/gream "stage=$stage" "run_name=$name" "${common[@]}" "synth.offline_style=$style"
  done
  .venv/bin/gream stage=eval "run_name=$name" "${common[@]}" "synth.offline_style=$style" eval.checkpoint=sft \
    "eval.splits=[test]" "eval.modes=[direct,reason]" "eval.max_users=${EVAL_USERS}" "eval.reason_max_users=${USERS}" \
    eval.engine.num_threads=1
}

mkdir -p runs/bench
for stage in data index; do .venv/bin/gream "stage=$stage" "run_name=$prefix-data" "${common[@]}"; done
for style in "${styles[@]}"; do lane "$style" > "runs/$prefix-$style.log" 2>&1 & done
wait
runs=("${styles[@]/#/runs/$prefix-}")
if (( ${#runs[@]} == 2 )); then
  .venv/bin/python bench/compare_runs.py "${runs[@]}" --split test --out "runs/bench/$prefix.json"
fi
.venv/bin/python - "${runs[@]}" <<'PY'
import json, sys
for run in sys.argv[1:]:
    m = json.load(open(f"{run}/eval/metrics.json"))
    print(run, json.dumps({k: m.get(k) for k in ("direct", "reason", "reason_rank")}, indent=1))
PY
