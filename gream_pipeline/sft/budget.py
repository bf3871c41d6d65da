"""Wall-clock budget for SFT (``sft.time_budget_min``): LLaMA-Factory in-process with a trainer callback.

LLaMA-Factory 0.9.5 accepts ``TrainerCallback`` objects through ``llamafactory.train.tuner.run_exp(args,
callbacks)``; :class:`TimeBudget` asks the HF trainer to stop after the first optimizer step that ends past the
deadline. LF's ``run_sft`` then saves the model as usual, so a budget-stopped run leaves a normal checkpoint.
``budget.json`` in the output directory records whether the budget stopped training and at which step.

It is one process by design (no torchrun: the deadline is not synchronised across ranks), so it refuses to run
where that process would not train with the emitted global batch: with several CUDA devices visible transformers
would wrap the model in ``DataParallel`` (global batch × devices) — the sft stage therefore starts it with
``CUDA_VISIBLE_DEVICES`` naming one device (:mod:`.launch`) — and with a DeepSpeed config LF itself demands
torchrun.

    python -m gream_pipeline.sft.budget <sft.yaml> <budget_seconds>
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from transformers import TrainerCallback


class TimeBudget(TrainerCallback):
    """Stop training once ``seconds`` of wall time have passed since ``on_train_begin``."""

    def __init__(self, seconds: float, report: Path | None = None):
        self.seconds = float(seconds)
        self.report = report
        self.start = 0.0
        self.stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and time.monotonic() - self.start > self.seconds:
            self.stopped_at = state.global_step
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.report is not None:
            self.report.write_text(json.dumps({
                "budget_s": self.seconds, "train_s": round(time.monotonic() - self.start, 1),
                "stopped_by_budget": self.stopped_at is not None, "stopped_at_step": self.stopped_at,
                "global_step": state.global_step, "max_steps": state.max_steps}, indent=1) + "\n")


def single_process_problem(args: Mapping, env: Mapping[str, str], cuda_devices: int) -> str | None:
    """Why LF's ``run_exp`` in this one process would not train with the YAML's batch geometry, or None."""
    if int(env.get("WORLD_SIZE", "1") or 1) > 1:
        return "the time budget runs LLaMA-Factory in one process, not under torchrun (WORLD_SIZE > 1)"
    if args.get("deepspeed"):
        return "a DeepSpeed config needs torchrun (LLaMA-Factory refuses it in one process)"
    if cuda_devices > 1 and not args.get("use_cpu"):
        return (f"{cuda_devices} CUDA devices are visible: transformers would wrap the model in DataParallel and "
                f"train with {cuda_devices}× the emitted batch; set CUDA_VISIBLE_DEVICES to one device")
    return None


def main(argv: list[str] | None = None) -> int:
    import yaml
    from llamafactory.train.tuner import run_exp

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    args = yaml.safe_load(Path(argv[0]).read_text())
    from gream_pipeline.sft.launch import count_devices

    problem = single_process_problem(args, os.environ, count_devices())
    if problem:
        print(f"gream_pipeline.sft.budget: refused: {problem}", file=sys.stderr)
        return 3
    out = Path(args["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    run_exp(args, callbacks=[TimeBudget(float(argv[1]), out / "budget.json")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
