#!/usr/bin/env bash
# Validation Recall@10 of the per-epoch SFT checkpoints of a run trained with sft.checkpoint_every_epoch=true (direct
# mode, first USERS validation users), in a copy of the run so that its eval/ stays as it is:
#   RUN=e16-scientific EXPERIMENT=bench_cpu DATASET=scientific STEPS="2784 5568 8352 11136" bash bench/epoch_curve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:?run name}; EXPERIMENT=${EXPERIMENT:-bench_cpu}; DATASET=${DATASET:-scientific}; USERS=${USERS:-1000}
src="runs/${RUN}"; dst="runs/${RUN}-curve"; out="${dst}/epoch_curve.jsonl"
mkdir -p "$dst"
for stage in data index synth sft; do [[ -d "$dst/$stage" ]] || cp -a "$src/$stage" "$dst/$stage"; done
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
for step in ${STEPS:?checkpoint steps}; do
  .venv/bin/gream stage=eval "experiment=${EXPERIMENT}" "dataset=${DATASET}" "run_name=${RUN}-curve" ${ARGS:-} \
    "eval.checkpoint=$(pwd)/${dst}/sft/model/checkpoint-${step}" "eval.splits=[valid]" "eval.modes=[direct]" \
    "eval.max_users=${USERS}" "eval.engine.num_threads=${THREADS:-1}" > "${dst}/eval-${step}.log" 2>&1
  .venv/bin/python - "$dst" "$step" >> "$out" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/eval/metrics.json"))
print(json.dumps({"step": int(sys.argv[2]), "users": m["direct_users"], "recall@10": m["direct"]["recall@10"],
                  "ndcg@10": m["direct"]["ndcg@10"], "recall@10_ci95": m.get("recall@10_ci95")}))
PY
done
cat "$out"
