"""Thinking length of the synthesized reasoning rows, in the run's own tokens: how much of them a thinking budget
(`eval.think_budget`) covers. Counts the tokens of each text up to and including `<answer>`.

  python bench/think_lengths.py runs/bench_cpu-scientific [--budget 256 384 512] [--max-rows 2000] [--tokenizer DIR]

``--tokenizer`` measures a run whose SFT stage has not run yet with another run's tokenizer (its sft/model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--budget", type=int, nargs="+", default=[256, 384, 512])
    ap.add_argument("--max-rows", type=int, default=2000)
    ap.add_argument("--tokenizer", type=Path, default=None, help="tokenizer dir (default: RUN/sft/model)")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(args.tokenizer or args.run / "sft" / "model"))
    with open(args.run / "synth" / "reasoning.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.max_rows), f)]
    lengths = sorted(len(tok(t[: t.index("<answer>") + len("<answer>")], add_special_tokens=False)["input_ids"])
                     for t in texts if "<answer>" in t)
    at = lambda q: lengths[int(q * (len(lengths) - 1))]  # noqa: E731
    print(json.dumps({"run": str(args.run), "rows": len(lengths), "mean": round(sum(lengths) / len(lengths), 1),
                      "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": lengths[-1],
                      "covered": {b: round(sum(x <= b for x in lengths) / len(lengths), 4) for b in args.budget}}))


if __name__ == "__main__":
    main()
