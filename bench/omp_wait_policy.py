"""Training-step cost of a small transformer (the tiny model's width/depth) under OpenMP wait policies, on a quiet
CPU and beside a CPU-bound process, each setting in its own subprocess (libgomp reads the policy at load).

    .venv/bin/python bench/omp_wait_policy.py [--steps 15] [--out runs/bench/omp_wait_policy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STEP = """
import time, torch
torch.manual_seed(0)
m = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(256, 4, 768, batch_first=True), 4)
opt = torch.optim.AdamW(m.parameters())
x = torch.randn(16, 120, 256)
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x).float().sum()
    y.backward(); opt.step(); opt.zero_grad()
for _ in range(3): step()
t = time.time()
for _ in range({steps}): step()
print((time.time() - t) / {steps})
"""

SETTINGS = {"default (spin)": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}, "1 thread": {"OMP_NUM_THREADS": "1"}}


def seconds_per_step(env: dict, steps: int) -> float:
    full = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    full.update({"OMP_NUM_THREADS": "2", **env})
    out = subprocess.run([sys.executable, "-c", STEP.format(steps=steps)], env=full, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/omp_wait_policy.json"))
    args = parser.parse_args()
    results = {"quiet": {}, "beside one busy core": {}}
    for name, env in SETTINGS.items():
        results["quiet"][name] = round(seconds_per_step(env, args.steps), 3)
    load = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1)
        for name, env in SETTINGS.items():
            results["beside one busy core"][name] = round(seconds_per_step(env, args.steps), 3)
    finally:
        load.kill()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
