"""Sequential-recommendation SFT rows, ``sft.seqrec_format`` side by side: ``sequence`` (one multi-turn row per window
of a user's training items, every item a target), ``continuation`` (one row per window, the IDs back to back in one
assistant turn) and ``per_target`` (the paper's rows: one target per row).

On the data and index stages of a run (default ``runs/demo_cpu-scientific``: ``gream stage=index
experiment=demo_cpu dataset=scientific``), for every sequential row of each format (no ``max_seqrec`` cap):

- tokens per target and the loss-token share, measured with the training tokenizer and LLaMA-Factory's own template
  at ``cutoff_len`` (:func:`gream_pipeline.sft.llamafactory_glue.fit_to_cutoff`; also: rows cut to fit, turns LF
  would drop — 0 — and the longest row);
- targets supervised per second (and those with at least one history item: a ``sequence`` row's first turn predicts
  its item from no history): a fixed number of real LLaMA-Factory training steps (``run_exp``, the demo's
  settings: scratch tiny Qwen3 of ``recipes/model/tiny_cpu.yaml``, batch 16, bf16 autocast, length-grouped batches,
  one thread) on a seeded random sample of the rows; the first step is warm-up and not timed. Both formats share
  one base model and tokenizer (trained on the item texts and both formats' rows).

Writes ``runs/bench/seqrec_format.json``. ``make bench-seqrec`` (~2–3 minutes of training per format):

    python bench/seqrec_format.py [--run runs/demo_cpu-scientific] [--steps 200] [--out runs/bench/seqrec_format.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ("sequence", "continuation", "per_target")
WINDOWED = ("sequence", "continuation")  # a window's first target is predicted from no history
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1",
              "TOKENIZERS_PARALLELISM": "false", "DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}


def _read_json(path: Path):
    with open(path) as handle:
        return json.load(handle)


def seqrec_rows(run: Path, fmt: str, max_history: int, seed: int) -> list[dict]:
    """Every sequential row of ``fmt`` built by the SFT task code from the data + index stages."""
    from gream_pipeline.artifacts import read_jsonl
    from gream_pipeline.sft.tasks import build_alignment

    train = read_jsonl(run / "data" / "train.jsonl")
    index = _read_json(run / "index" / "index.json")
    rows = build_alignment(train, {}, [], index, seed=seed, seqrec_format=fmt, max_history=max_history)
    return [r for r in rows if r["task"] == "seqrec"]


def train_steps(yaml_path: Path, report: Path) -> None:
    """(child process) LF's run_exp on one thread; per optimizer step its end time → ``report``."""
    import torch
    import yaml
    from llamafactory.train.tuner import run_exp
    from transformers import TrainerCallback

    torch.set_num_threads(1)
    ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    run_exp(yaml.safe_load(yaml_path.read_text()), callbacks=[StepClock()])
    report.write_text(json.dumps({"step_ends": ends, "torch_threads": torch.get_num_threads()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "demo_cpu-scientific")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "seqrec_format.json")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "seqrec_format")
    parser.add_argument("--steps", type=int, default=200, help="LF training steps per format (1 warm-up)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cutoff-len", type=int, default=768)
    parser.add_argument("--max-history", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--_train", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._train:
        train_steps(*args._train)
        return 0
    os.environ.update(THREAD_ENV)

    import yaml

    from gream_pipeline.sft.llamafactory_glue import (emit_dataset, fit_to_cutoff, llamafactory_args, load_tokenizer,
                                                      n_targets, to_sharegpt, validate_args, write_yaml)
    from gream_pipeline.sft.model_prep import prepare_model
    from gream_pipeline.sft.tasks import example_text

    for need in ("data/train.jsonl", "data/items.json", "index/index.json", "index/vocab.json"):
        if not (args.run / need).is_file():
            print(f"{args.run / need} missing: run `.venv/bin/gream stage=index experiment=demo_cpu "
                  f"dataset=scientific` first", file=sys.stderr)
            return 1
    t0 = time.perf_counter()
    rows = {fmt: seqrec_rows(args.run, fmt, args.max_history, args.seed) for fmt in FORMATS}
    arch = yaml.safe_load((ROOT / "recipes" / "model" / "tiny_cpu.yaml").read_text())["arch"]
    items = _read_json(args.run / "data" / "items.json")
    corpus = [" ".join(v for v in rec.values() if v) for rec in items.values()]
    corpus += [example_text(r) for fmt in FORMATS for r in rows[fmt]]
    id_tokens = _read_json(args.run / "index" / "vocab.json")
    base = prepare_model("scratch", args.work / "base_model", id_tokens, corpus, arch=arch, seed=args.seed)
    tok = load_tokenizer(base, id_tokens)
    print(f"rows built, base model prepared in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    results: dict = {}
    for fmt in FORMATS:
        fitted, cut = fit_to_cutoff([to_sharegpt(r, "align") for r in rows[fmt]], tok, args.cutoff_len)
        n_rows, targets = len(fitted), sum(map(n_targets, fitted))
        first_turns = n_rows if fmt in WINDOWED else 0
        entry = {
            "rows": n_rows, "targets": targets, "targets_with_history": targets - first_turns,
            "targets_per_row": targets / n_rows, "tokens": cut["tokens"], "loss_tokens": cut["loss_tokens"],
            "tokens_per_target": cut["tokens"] / targets, "tokens_per_row": cut["tokens"] / n_rows,
            "loss_token_share": cut["loss_tokens"] / cut["tokens"], "max_row_tokens": cut["max_row_tokens"],
            "rows_cut_to_fit_cutoff": cut["rows_split"], "dropped_turns": cut["dropped_turns"],
        }
        # timed LF training on a seeded sample of exactly steps × batch rows (one pass, one thread)
        n_sample = min(n_rows, args.steps * args.batch)
        sample = random.Random(args.seed).sample(fitted, n_sample)
        data_dir, out_dir = args.work / fmt / "data", args.work / fmt / "out"
        summary = emit_dataset(data_dir, sample, [], args.batch, 1, 1.5, args.seed, length_grouped=True)
        lf = llamafactory_args(base, data_dir, out_dir, per_device_batch=args.batch, grad_accum=1, lr=1e-3,
                               cutoff_len=args.cutoff_len, bf16=not args.fp32, use_cpu=True, logging_steps=10,
                               seed=args.seed, lr_scheduler_type="cosine", warmup_ratio=0.03,
                               gradient_checkpointing=False, extra={"save_strategy": "no", "plot_loss": False})
        lf.pop("save_steps", None)
        validate_args(lf, batch_size=args.batch, require_files=True)
        yaml_path, clock = write_yaml(lf, args.work / fmt / "train.yaml"), args.work / fmt / "clock.json"
        t1 = time.perf_counter()
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_train", str(yaml_path), str(clock)],
                       check=True, env={**os.environ, **THREAD_ENV}, cwd=ROOT)
        wall = time.perf_counter() - t1
        ends = _read_json(clock)["step_ends"]
        steps = _read_json(Path(summary["schedule"]))["steps"]
        timed = steps[1:len(ends)]  # steps 2..N: after the first step's end
        seconds = ends[-1] - ends[0]
        step_targets = sum(n_targets(sample[i]) for st in timed for i in st["examples"])
        step_first = len(timed) * args.batch if fmt in WINDOWED else 0  # targets predicted from no history
        entry.update({
            "timed_steps": len(timed), "timed_seconds": round(seconds, 2), "seconds_per_step": seconds / len(timed),
            "targets_per_s": step_targets / seconds,
            "targets_with_history_per_s": (step_targets - step_first) / seconds,
            "rows_per_s": len(timed) * args.batch / seconds,
            "epoch_seconds_all_targets": n_rows / (len(timed) * args.batch / seconds),
            "process_wall_s": round(wall, 1),
        })
        results[fmt] = entry
        print(f"{fmt}: {json.dumps(entry)}", file=sys.stderr)
    per = results["per_target"]
    report = {
        "run": str(args.run), "cutoff_len": args.cutoff_len, "max_history": args.max_history, "batch": args.batch,
        "bf16": not args.fp32, "threads": 1, "steps_per_format": args.steps, "model": arch,
        "formats": results,
        **{f"{fmt}_vs_per_target": {
            "tokens_per_target": results[fmt]["tokens_per_target"] / per["tokens_per_target"],
            "loss_token_share": results[fmt]["loss_token_share"] / per["loss_token_share"],
            "targets_per_s": results[fmt]["targets_per_s"] / per["targets_per_s"],
            "targets_with_history_per_s": results[fmt]["targets_with_history_per_s"] / per["targets_with_history_per_s"],
            "epoch_seconds": results[fmt]["epoch_seconds_all_targets"] / per["epoch_seconds_all_targets"],
        } for fmt in WINDOWED},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k.endswith("_vs_per_target")}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
