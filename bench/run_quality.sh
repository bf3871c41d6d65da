#!/usr/bin/env bash
# Quality benchmark (not run in CI). One lane per dataset, lanes run in parallel, each pinned to
# THREADS torch/OMP threads (default 1: two lanes on a 2-core machine; on one lane 2 threads give only ~1.7x).
# A lane: every gream stage with experiment=$EXPERIMENT (SFT bounded by steps), direct mode on every test user,
# then most-popular and a small RecBole SASRec grid (bench/baselines/sasrec_grid.py: each config trained to early
# stopping on validation NDCG@10 with patience 10, the best config on validation reported) on exactly the same
# split and users. Every step is resumable: a finished gream stage is up to date, a finished grid config is kept.
# Then the generated section of bench/results.md and bench/results.json. Logs: runs/bench/.
#   DATASETS="scientific instruments" THREADS=1 ARGS="sft.epochs=4" bash bench/run_quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-"scientific instruments"}
EXPERIMENT=${EXPERIMENT:-bench_cpu}
THREADS=${THREADS:-1}
# Reasoning mode is measured on its own (eval.reason_max_users users, `reason_rank` block); the quality lanes score
# direct mode only, on every test user.
COMMON_ARGS=${COMMON_ARGS:-"eval.modes=[direct]"}
# Per-dataset overrides (<DATASET>_ARGS). Scientific's item tasks carry long descriptions (its rows cost ~2x
# Instruments'), so it keeps the demo's 1,500; Instruments (3x the users) trains 6 epochs to stay within 2 h.
SCIENTIFIC_ARGS=${SCIENTIFIC_ARGS:-"sft.max_item_tasks=1500"}
INSTRUMENTS_ARGS=${INSTRUMENTS_ARGS:-"sft.epochs=6"}
# SASRec grid per dataset (<DATASET>_SASREC_GRID); RecBole's defaults (hidden 64, dropout 0.5, lr 1e-3) run first.
SASREC_GRID=${SASREC_GRID:-"--hidden 64 128 --dropout 0.2 0.5 --lr 1e-3"}
mkdir -p runs/bench
bash bench/baselines/setup_recbole.sh

lane() {
  local ds=$1 run="runs/${EXPERIMENT}-$1" t0 var="${1^^}_ARGS" gvar="${1^^}_SASREC_GRID"
  t0=$(date +%s)
  local extra=${!var:-} grid=${!gvar:-$SASREC_GRID}
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS .venv/bin/gream stage=all "experiment=${EXPERIMENT}" \
    "dataset=${ds}" "rl.trl.torch_num_threads=${THREADS}" "eval.engine.num_threads=${THREADS}" $COMMON_ARGS \
    $extra ${ARGS:-}
  echo "lane $ds: gream done in $(( $(date +%s) - t0 )) s"
  local n
  n=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['direct_users'])" "$run/eval/metrics.json")
  .venv/bin/python bench/baselines/most_popular.py --dataset-dir "$run/data" --first-n-test "$n" \
    --out "$run/baselines/most_popular.json"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$THREADS .venv/bin/python bench/baselines/sasrec_grid.py --dataset-dir "$run/data" \
    --threads "$THREADS" --first-n-test "$n" $grid
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
.venv/bin/python bench/collect_results.py "${runs[@]}" --out bench/results.md
exit $status
