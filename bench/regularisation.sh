#!/usr/bin/env bash
# Regularisation A/B on Scientific at benchmark scale: the bench_cpu Scientific lane (8 epochs, bounded by steps,
# no time guard) with and without weight decay + attention dropout, two lanes side by side (one thread each),
# scored in direct mode on every validation user, then a paired comparison (bench/compare_runs.py).
#   bash bench/regularisation.sh            # writes runs/reg-*/ and runs/bench/regularisation.json
# REG="..." replaces lane B's overrides, NAME=... its run name, OUT=... the JSON; EPOCHS=N changes both lanes, e.g.
#   REG="model.arch.hidden_size=128 model.arch.num_hidden_layers=2 model.arch.intermediate_size=384" \
#   NAME=reg-h128-l2 OUT=runs/bench/model_size.json bash bench/regularisation.sh   # a smaller model
set -euo pipefail
cd "$(dirname "$0")/.."
REG=${REG:-"+sft.extra.weight_decay=0.1 model.arch.attention_dropout=0.1"}
NAME=${NAME:-reg-regularised}
OUT=${OUT:-runs/bench/regularisation.json}
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
lane reg-base > runs/reg-base.log 2>&1 & lane "$NAME" $REG > "runs/$NAME.log" 2>&1 & wait
.venv/bin/python bench/compare_runs.py runs/reg-base "runs/$NAME" --split valid \
  --out "$OUT"
