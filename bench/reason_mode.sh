#!/usr/bin/env bash
# Reasoning mode on a finished benchmark run (bench/run_quality.sh), in its own run folder so the benchmark's
# outputs stay as they are: data/, index/, synth/, sft/ and rl/ are copied (their manifests keep the stages up to
# date), then
#   eval: reasoning mode (thinking budget + trie-constrained answers) and direct mode on the same first
#         USERS test users -> eval/metrics.json `reason` (Pass@K, natural_close_rate) and `reason_rank` (Recall/NDCG of
#         the ranked answers beside direct mode on those users, cost per recommendation);
#   rl (RL_STEPS > 0): SRPO and plain GRPO on reasoning prompts (rl.mode=reason, same seed, steps and data),
#         validated before/after on VALID_USERS validation users -> rl/rl_summary.json `paired` (paired bootstrap
#         intervals of SRPO - before, SRPO - GRPO, GRPO - before) and the per-step plots of both runs.
# RL_ARGS adds overrides to the rl stage only (e.g. rl.validate.ray.enabled=true to validate on two workers).
#   DATASET=instruments USERS=200 RL_STEPS=0 bash bench/reason_mode.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-instruments}
EXPERIMENT=${EXPERIMENT:-bench_cpu}
USERS=${USERS:-200}
RL_STEPS=${RL_STEPS:-0}
VALID_USERS=${VALID_USERS:-500}
THREADS=${THREADS:-1}
src=${SRC:-"runs/${EXPERIMENT}-${DATASET}"}  # another finished run: SRC=runs/<run> ARGS="<its overrides>"
name=${NAME:-"reason-$(basename "$src")"}
dst="runs/${name}"
mkdir -p "$dst"
for stage in data index synth sft rl; do
  [[ -d "$dst/$stage" || ! -d "$src/$stage" ]] || cp -a "$src/$stage" "$dst/$stage"
done
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
common=("experiment=${EXPERIMENT}" "dataset=${DATASET}" "run_name=${name}" "eval.engine.num_threads=${THREADS}"
        "rl.trl.torch_num_threads=${THREADS}" "rl.validate.engine.num_threads=${THREADS}" ${ARGS:-})
if (( RL_STEPS > 0 )); then
  .venv/bin/gream stage=rl "${common[@]}" rl.mode=reason rl.compare_grpo=true "rl.trl.max_steps=${RL_STEPS}" \
    "rl.validate.users=${VALID_USERS}" "rl.validate.reason_users=${VALID_USERS}" "rl.validate.modes=[reason]" \
    ${RL_ARGS:-}
fi
.venv/bin/gream stage=eval "${common[@]}" "eval.modes=[direct,reason]" "eval.max_users=${USERS}" \
  "eval.reason_max_users=${USERS}"
.venv/bin/python - "$dst" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/eval/metrics.json"))
print(json.dumps({k: m.get(k) for k in ("direct", "reason", "reason_rank")}, indent=1))
PY
