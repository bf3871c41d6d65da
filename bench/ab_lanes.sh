#!/usr/bin/env bash
# Validation A/B lanes at benchmark scale: the bench_cpu lane of DATASET (default scientific: 8 epochs bounded by
# steps, no time guard, `sft.max_item_tasks=1500` as in bench/run_quality.sh), one thread per lane, scored in direct
# mode on every validation user; then every lane after the first is compared with the first on the same users
# (bench/compare_runs.py: paired bootstrap) into OUT_DIR/<first>-vs-<lane>.json.
#   bash bench/ab_lanes.sh NAME "OVERRIDES" [NAME "OVERRIDES" ...]
#   SMALL="model.arch.hidden_size=128 model.arch.num_hidden_layers=2 model.arch.intermediate_size=384"
#   PARALLEL=0 bash bench/ab_lanes.sh small "$SMALL" small-seq-only "$SMALL sft.max_item_tasks=0 sft.max_preference=0"
# PARALLEL=1 (default) runs the lanes side by side, PARALLEL=0 one after another (on one core, while another job
# has the other). Work is bounded by steps and the index is thread-independent, so a lane's numbers do not depend on
# what ran beside it (on one host). A finished stage is up to date, so a re-run resumes where it stopped.
# EPOCHS=N changes every lane; COMMON="..." replaces the shared overrides. Logs (appended): runs/<NAME>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-scientific}
OUT_DIR=${OUT_DIR:-runs/bench/ab}
read -r -a common <<< "${COMMON:-sft.max_item_tasks=1500}"
common=(experiment=bench_cpu "dataset=$DATASET" "${common[@]}" "sft.epochs=${EPOCHS:-8}" sft.time_budget_min=null)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

lane() {
  local name=$1; shift
  for stage in data index synth sft; do .venv/bin/gream "stage=$stage" "run_name=$name" "${common[@]}" "$@"; done
  .venv/bin/gream stage=eval "run_name=$name" "${common[@]}" eval.checkpoint=sft "eval.splits=[valid]" \
    "eval.modes=[direct]" eval.max_users=null eval.engine.num_threads=1 "$@"
}

(( $# >= 2 && $# % 2 == 0 )) || { echo "usage: bench/ab_lanes.sh NAME \"OVERRIDES\" [NAME \"OVERRIDES\" ...]" >&2; exit 2; }
mkdir -p runs "$OUT_DIR"
names=() pids=()
while (( $# )); do
  name=$1 overrides=$2; shift 2
  names+=("$name")
  # shellcheck disable=SC2086
  if [[ ${PARALLEL:-1} == 1 ]]; then lane "$name" $overrides >> "runs/$name.log" 2>&1 & pids+=($!)
  else lane "$name" $overrides >> "runs/$name.log" 2>&1; fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
for name in "${names[@]:1}"; do
  .venv/bin/python bench/compare_runs.py "runs/${names[0]}" "runs/$name" --split valid \
    --out "$OUT_DIR/${names[0]}-vs-$name.json"
done
