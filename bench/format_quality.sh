#!/usr/bin/env bash
# SFT row formats side by side (`make bench-format`): two formats (FORMATS, default "sequence continuation"; any
# two of sequence | continuation | per_target), two lanes in parallel, one thread each, the same number of epochs
# (EPOCHS, default 4) with a wall-clock backstop, then direct-mode Recall@10 on the same 1,000 validation users and a
# paired comparison (runs/bench/format_quality.json). Cost per format: bench/seqrec_format.py (`make bench-seqrec`).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a formats <<< "${FORMATS:-sequence continuation}"
EPOCHS=${EPOCHS:-4}
mkdir -p runs/bench
for fmt in "${formats[@]}"; do
  THREADS=1 bash bench/tune_lane.sh "ab-$fmt" "sft.seqrec_format=$fmt" sft.max_seqrec=null "sft.epochs=$EPOCHS" \
    sft.time_budget_min=60 ${ARGS:-} > "runs/bench/ab-$fmt.log" 2>&1 &
done
wait
.venv/bin/python bench/compare_runs.py "runs/ab-${formats[0]}" "runs/ab-${formats[1]}" \
  --out runs/bench/format_quality.json
