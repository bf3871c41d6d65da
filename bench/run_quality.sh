#!/usr/bin/env bash
# Quality benchmark (not run in CI). One lane per dataset, lanes run in parallel, each pinned to
# THREADS torch/OMP threads (default 1: two lanes on a 2-core machine; on one lane 2 threads give only ~1.7x).
# A lane: every gream stage with experiment=$EXPERIMENT (SFT stops at sft.time_budget_min), then most-popular and
# RecBole SASRec (early stopping on validation NDCG@10, patience 10 epochs; SASREC_MIN > 0 adds a time cap) on exactly
# the same split, all three scored on the same test users (all of them by default). Then bench/results.md from the measured numbers. Logs: runs/bench/.
#   DATASETS="scientific instruments" SASREC_MIN=20 THREADS=1 ARGS="sft.time_budget_min=60" bash bench/run_quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-"scientific instruments"}
SASREC_MIN=${SASREC_MIN:-0}
EXPERIMENT=${EXPERIMENT:-bench_cpu}
THREADS=${THREADS:-1}
# Per-dataset overrides (<DATASET>_ARGS), e.g. INSTRUMENTS_ARGS="eval.max_users=8000" to score fewer users.
INSTRUMENTS_ARGS=${INSTRUMENTS_ARGS:-""}
# Scientific's model rarely closes the reasoning format (it writes all 512 new tokens, ~16 s per user here), so its
# reasoning mode is scored on 24 users.
SCIENTIFIC_ARGS=${SCIENTIFIC_ARGS:-"eval.reason_max_users=24"}
mkdir -p runs/bench
bash bench/baselines/setup_recbole.sh

lane() {
  local ds=$1 run="runs/${EXPERIMENT}-$1" t0 var="${1^^}_ARGS"
  t0=$(date +%s)
  local extra=${!var:-}
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS .venv/bin/gream stage=all "experiment=${EXPERIMENT}" \
    "dataset=${ds}" "rl.trl.torch_num_threads=${THREADS}" "eval.engine.num_threads=${THREADS}" $extra ${ARGS:-}
  local n
  n=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['direct_users'])" "$run/eval/metrics.json")
  .venv/bin/python bench/baselines/most_popular.py --dataset-dir "$run/data" --first-n-test "$n" \
    --out "$run/baselines/most_popular.json"
  OMP_NUM_THREADS=$THREADS .venv-recbole/bin/python bench/baselines/sasrec_recbole.py --dataset-dir "$PWD/$run/data" \
    --epochs 200 --time-budget-min "$SASREC_MIN" --threads "$THREADS" --first-n-test "$n" \
    --out "$PWD/$run/baselines/sasrec_recbole.json"
  echo "lane $ds done in $(( $(date +%s) - t0 )) s"
}

pids=()
for ds in $DATASETS; do
  lane "$ds" > "runs/bench/lane-${ds}.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
runs=()
for ds in $DATASETS; do runs+=("runs/${EXPERIMENT}-${ds}"); done
shopt -s nullglob
tune=(runs/tune-*/)
.venv/bin/python bench/collect_results.py "${runs[@]}" ${tune:+--tune "${tune[@]%/}"} --notes bench/results_notes.md \
  --out bench/results.md
exit $status
