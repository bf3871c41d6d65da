#!/usr/bin/env bash
# Quality benchmark (issue #7; not run in CI): for each dataset, every gream stage with experiment=bench_cpu, then
# most-popular and RecBole SASRec on exactly the same split, then bench/results.md from the measured numbers.
#   DATASETS="scientific instruments" SASREC_MIN=30 ARGS="sft.max_seqrec=5000" bash bench/run_quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-"scientific instruments"}
SASREC_MIN=${SASREC_MIN:-30}
EXPERIMENT=${EXPERIMENT:-bench_cpu}
for ds in $DATASETS; do
  run="runs/${EXPERIMENT}-${ds}"
  .venv/bin/gream stage=all "experiment=${EXPERIMENT}" "dataset=${ds}" ${ARGS:-}
  .venv/bin/python bench/baselines/most_popular.py --dataset-dir "$run/data" --out "$run/baselines/most_popular.json"
  bash bench/baselines/setup_recbole.sh
  .venv-recbole/bin/python bench/baselines/sasrec_recbole.py \
    --dataset-dir "$PWD/$run/data" --epochs 200 --time-budget-min "$SASREC_MIN" --out "$PWD/$run/baselines/sasrec_recbole.json"
done
.venv/bin/python bench/collect_results.py runs/"${EXPERIMENT}"-* --out bench/results.md
