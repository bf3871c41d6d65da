#!/usr/bin/env bash
# One tuning lane: a short, time-budgeted gream run on Scientific, scored on 1,000 validation users in
# direct mode (the test split is left for bench/run_quality.sh). Lanes differ only in the overrides after the name;
# run two side by side (one thread each) so that they share the machine's noise:
#   bash bench/tune_lane.sh tune-sentence index.embedder=sentence & bash bench/tune_lane.sh tune-collab index.embedder=collaborative & wait
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
common=(experiment=bench_cpu dataset=scientific "run_name=$name" sft.max_seqrec=8000 sft.max_item_tasks=1500
        sft.max_preference=200 sft.max_reason=64 sft.epochs=2 sft.time_budget_min=15)
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
for stage in data index synth sft; do .venv/bin/gream "stage=$stage" "${common[@]}" "$@"; done
.venv/bin/gream stage=eval "${common[@]}" eval.checkpoint=sft "eval.splits=[valid]" "eval.modes=[direct]" \
  eval.max_users=1000 "eval.engine.num_threads=${THREADS:-1}" "$@"
