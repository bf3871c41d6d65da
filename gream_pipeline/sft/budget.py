"""Wall-clock budget for SFT (``sft.time_budget_min``): LLaMA-Factory in-process with a trainer callback.

LLaMA-Factory 0.9.5 accepts ``TrainerCallback`` objects through ``llamafactory.train.tuner.run_exp(args,
callbacks)``; :class:`TimeBudget` asks the HF trainer to stop after the first optimizer step that ends past the
deadline. LF's ``run_sft`` then saves the model as usual, so a budget-stopped run leaves a normal checkpoint.
``budget.json`` in the output directory records whether the budget stopped training and at which step.

    python -m gream_pipeline.sft.budget <sft.yaml> <budget_seconds>
"""

from __future__ import annotations

import json
import sys
import time
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


def main(argv: list[str] | None = None) -> int:
    import yaml
    from llamafactory.train.tuner import run_exp

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    args = yaml.safe_load(Path(argv[0]).read_text())
    out = Path(args["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    run_exp(args, callbacks=[TimeBudget(float(argv[1]), out / "budget.json")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
