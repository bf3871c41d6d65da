#!/usr/bin/env bash
# Regularisation A/B on Scientific at benchmark scale (bench/ab_lanes.sh): the bench_cpu Scientific lane with and
# without weight decay + attention dropout, two lanes side by side (one thread each), scored in direct mode on every
# validation user, then a paired comparison (bench/compare_runs.py).
#   bash bench/regularisation.sh            # writes runs/reg-*/ and runs/bench/regularisation.json
# REG="..." replaces lane B's overrides, NAME=... its run name, OUT=... the JSON; EPOCHS=N changes both lanes, e.g.
#   REG="model.arch.hidden_size=128 model.arch.num_hidden_layers=2 model.arch.intermediate_size=384" \
#   NAME=reg-h128-l2 OUT=runs/bench/model_size.json bash bench/regularisation.sh   # a smaller model
set -euo pipefail
cd "$(dirname "$0")/.."
REG=${REG:-"+sft.extra.weight_decay=0.1 model.arch.attention_dropout=0.1"}
NAME=${NAME:-reg-regularised}
OUT=${OUT:-runs/bench/regularisation.json}
OUT_DIR=runs/bench/ab bash bench/ab_lanes.sh reg-base "" "$NAME" "$REG"
cp "runs/bench/ab/reg-base-vs-$NAME.json" "$OUT"
