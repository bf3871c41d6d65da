"""Standalone CLI (the pipeline calls ``run_synth`` through its own Hydra stage):

    python -m data_synth --items items.json --train train.jsonl --index index.json --out DIR
        [--base-url URL --model NAME] [--set key=value ...]

``--set`` takes any ``SynthConfig`` field; values are parsed as JSON when possible (``--set jobs='["reason"]'``).
Prints a short report on stderr and the run summary as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import SynthConfig, recipe_defaults
from .runner import format_summary, run_synth


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m data_synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base-url", default="")
    parser.add_argument("--model", default="")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    values = {**recipe_defaults(), "base_url": args.base_url, "model": args.model}
    for item in args.set:
        key, _, raw = item.partition("=")
        values[key.strip()] = _value(raw)
    cfg = SynthConfig.from_mapping(values)
    items = json.loads(args.items.read_text())
    train = [json.loads(line) for line in args.train.read_text().splitlines() if line.strip()]
    index = json.loads(args.index.read_text())
    summary = run_synth(items, train, index, args.out, cfg)
    print(format_summary(summary), file=sys.stderr)
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
