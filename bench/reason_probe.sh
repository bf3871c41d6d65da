#!/usr/bin/env bash
# Probe: is a finished run's reasoning mode limited by how much reasoning it was trained on? Continues the run's SFT
# model on its own reasoning rows only (PASSES more passes over the unique rows, LR, the run's LLaMA-Factory
# arguments otherwise), then evaluates direct + reasoning mode on the run's test users. A diagnostic, not the
# recipe: training reasoning after alignment forgets direct mode (paper Table 4, D -> R).
#   RUN=runs/demo-quiet-scientific PASSES=6 LR=3e-4 bash bench/reason_probe.sh
# Writes runs/probe-<run>/ (dataset, probe.yaml, model/) and runs/probe-<run>-eval/ (its eval stage).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:?RUN=runs/<finished run>}
PASSES=${PASSES:-6}
LR=${LR:-3e-4}
EXPERIMENT=${EXPERIMENT:-demo_cpu}
DATASET=${DATASET:-scientific}
name=$(basename "$RUN")
probe="runs/probe-$name"
mkdir -p "$probe/dataset"
.venv/bin/python - "$RUN/sft" "$probe" "$PASSES" "$LR" <<'PY'
import json, os, sys
import yaml
src, out, passes, lr = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rows = list(dict.fromkeys(line for line in open(f"{src}/dataset/gream_sft.jsonl")
                          if "<think>" in json.loads(line)["conversations"][-1]["value"]))
open(f"{out}/dataset/reason.jsonl", "w").writelines(rows * passes)
info = json.load(open(f"{src}/dataset/dataset_info.json"))["gream_sft"]
json.dump({"reason": {**info, "file_name": "reason.jsonl"}}, open(f"{out}/dataset/dataset_info.json", "w"), indent=1)
args = yaml.safe_load(open(f"{src}/sft.yaml"))
args.update(model_name_or_path=f"{os.path.abspath(src)}/model", dataset="reason", dataset_dir=f"{out}/dataset",
            output_dir=f"{out}/model", learning_rate=lr, save_strategy="no", warmup_steps=0.0)
yaml.safe_dump(args, open(f"{out}/probe.yaml", "w"))
print(f"{len(rows)} reasoning rows x {passes} passes, lr {lr}")
PY
[[ -f $probe/model/model.safetensors ]] || \
  OMP_WAIT_POLICY=PASSIVE DISABLE_VERSION_CHECK=1 .venv/bin/llamafactory-cli train "$probe/probe.yaml" > "$probe/train.log" 2>&1
mkdir -p "$probe-eval"
for stage in data index synth sft rl; do [[ -e $probe-eval/$stage ]] || cp -al "$RUN/$stage" "$probe-eval/$stage"; done
.venv/bin/gream stage=eval "experiment=$EXPERIMENT" "dataset=$DATASET" "run_name=$(basename "$probe")-eval" \
  "eval.modes=[direct,reason]" "eval.checkpoint=$PWD/$probe/model" ${ARGS:-}
.venv/bin/python bench/reason_failures.py "$probe-eval" --examples 0
