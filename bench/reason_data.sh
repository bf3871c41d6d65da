#!/usr/bin/env bash
# Reasoning data a small model can learn, on Scientific at benchmark scale: the regularisation A/B's base lane
# (bench/regularisation.sh: bench_cpu, max_item_tasks 1500, 8 epochs, full templates, 256 reasoning rows) against
# a lane trained on compact templates (synth.offline_style=compact) and more reasoning rows (MAX_REASON), with the
# same data and index. Both are scored on the same test users: direct mode on all of them, reasoning mode on the
# first USERS (natural_close_rate, Pass@K, reason_rank, cost per user); then a paired comparison of direct mode.
#   bash bench/reason_data.sh     # needs runs/reg-base (bench/regularisation.sh); writes runs/reason-compact/
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-200}
MAX_REASON=${MAX_REASON:-1024}
base=reg-base
lane=${LANE:-reason-compact}
common=(experiment=bench_cpu dataset=scientific sft.max_item_tasks=1500 sft.epochs=8 sft.time_budget_min=null)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
[[ -d runs/$base/sft/model ]] || { echo "runs/$base/sft/model missing: run bench/regularisation.sh first"; exit 2; }

score() {
  .venv/bin/gream stage=eval "run_name=$1" "${common[@]}" eval.checkpoint=sft "eval.splits=[test]" \
    "eval.modes=[direct,reason]" eval.max_users=null "eval.reason_max_users=$USERS" eval.engine.num_threads=1 \
    "${@:2}"
}

train() {
  mkdir -p "runs/$lane"
  for stage in data index; do [[ -d runs/$lane/$stage ]] || cp -a "runs/$base/$stage" "runs/$lane/$stage"; done
  for stage in synth sft; do
    .venv/bin/gream "stage=$stage" "run_name=$lane" "${common[@]}" "$@"
  done
  score "$lane" "$@"
}

args=(synth.offline_style=compact "sft.max_reason=$MAX_REASON")
score "$base" > "runs/$base-reason.log" 2>&1 & train "${args[@]}" > "runs/$lane.log" 2>&1 & wait
.venv/bin/python bench/compare_runs.py "runs/$base" "runs/$lane" --split test --out "runs/bench/$lane.json"
