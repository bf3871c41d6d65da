#!/usr/bin/env bash
# Reasoning mode of one finished run with and without the early-end ban (eval.ban_early_end), on the same test users
# and seeds: natural-close rate, Pass@K, reason_rank and cost side by side, then how the forced samples stopped.
#   RUN=runs/demo-loaded-scientific USERS=24 bash bench/reason_ban.sh
# Writes runs/ban-off-<run>/ and runs/ban-on-<run>/ (their eval stages; the other stages are hard links to RUN's).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:?RUN=runs/<finished run>}
USERS=${USERS:-24}
EXPERIMENT=${EXPERIMENT:-demo_cpu}
DATASET=${DATASET:-scientific}
name=$(basename "$RUN")
for ban in off on; do
  out="runs/ban-$ban-$name"
  mkdir -p "$out"
  for stage in data index synth sft rl; do [[ -e $out/$stage ]] || cp -al "$RUN/$stage" "$out/$stage"; done
  flag=$([[ $ban == on ]] && echo true || echo false)
  .venv/bin/gream stage=eval "experiment=$EXPERIMENT" "dataset=$DATASET" "run_name=ban-$ban-$name" \
    "eval.modes=[reason]" "eval.reason_max_users=$USERS" "eval.ban_early_end=$flag" ${ARGS:-}
done
.venv/bin/python - "runs/ban-off-$name" "runs/ban-on-$name" <<'PY'
import json, sys
keys = ["natural_close_rate", "valid_answer_rate", "pass@1", "pass@5", "pass@10"]
print(f"{'run':<32}" + "".join(f"{k:>20}" for k in keys) + f"{'rank R@10':>11}{'s/user':>9}{'tokens/user':>13}")
for run in sys.argv[1:]:
    m = json.load(open(f"{run}/eval/metrics.json"))
    r, rank = m["reason"], m["reason_rank"]
    cost = rank["cost_per_recommendation"]["reason"]
    print(f"{run.split('/')[-1]:<32}" + "".join(f"{r[k]:>20.4f}" for k in keys)
          + f"{rank['reason']['recall@10']:>11.4f}{cost['seconds_per_user']:>9.2f}{r['generated_tokens_per_user']:>13.1f}"
          + f"   ({rank['users']} users)")
PY
for ban in off on; do .venv/bin/python bench/reason_failures.py "runs/ban-$ban-$name" --examples 0; done
