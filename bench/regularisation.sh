#!/usr/bin/env bash
# Regularisation A/B on Scientific at benchmark scale: the bench_cpu Scientific lane (8 epochs, bounded by steps,
# no time guard) with and without weight decay + attention dropout, two lanes side by side (one thread each),
# scored in direct mode on every validation user, then a paired comparison (bench/compare_runs.py).
#   bash bench/regularisation.sh            # writes runs/reg-*/ and runs/bench/regularisation.json
# REG="..." replaces lane B's overrides; EPOCHS=N changes both lanes.
set -euo pipefail
cd "$(dirname "$0")/.."
REG=${REG:-"+sft.extra.weight_decay=0.1 model.arch.attention_dropout=0.1"}
common=(experiment=bench_cpu dataset=scientific sft.max_item_tasks=1500 "sft.epochs=${EPOCHS:-8}"
        sft.time_budget_min=null)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

lane() {
  local name=$1; shift
  for stage in data index synth sft; do .venv/bin/gream "stage=$stage" "run_name=$name" "${common[@]}" "$@"; done
  .venv/bin/gream stage=eval "run_name=$name" "${common[@]}" eval.checkpoint=sft "eval.splits=[valid]" \
    "eval.modes=[direct]" eval.max_users=null eval.engine.num_threads=1 "$@"
}

mkdir -p runs/bench
# shellcheck disable=SC2086
lane reg-base > runs/reg-base.log 2>&1 & lane reg-regularised $REG > runs/reg-regularised.log 2>&1 & wait
.venv/bin/python bench/compare_runs.py runs/reg-base runs/reg-regularised --split valid \
  --out runs/bench/regularisation.json
