#!/usr/bin/env bash
# SFT row formats side by side (`make bench-format`): sft.seqrec_format=sequence vs per_target, two lanes in
# parallel, one thread each, the same SFT wall-clock budget (BUDGET_MIN, default 15), then direct-mode Recall@10 on
# the same 1,000 validation users and a paired comparison (runs/bench/format_quality.json). Cost per format
# (tokens per target, targets/s) is bench/seqrec_format.py (`make bench-seqrec`).
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET_MIN=${BUDGET_MIN:-15}
mkdir -p runs/bench
for fmt in sequence per_target; do
  THREADS=1 bash bench/tune_lane.sh "fmt-$fmt" "sft.seqrec_format=$fmt" sft.max_seqrec=null sft.epochs=3 \
    "sft.time_budget_min=$BUDGET_MIN" ${ARGS:-} > "runs/bench/fmt-$fmt.log" 2>&1 &
done
wait
.venv/bin/python bench/compare_runs.py runs/fmt-per_target runs/fmt-sequence --out runs/bench/format_quality.json
