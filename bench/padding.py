"""Padding cost of the emitted SFT batches: tokens the model computes (batch × longest row, as
LLaMA-Factory pads to the longest row of a batch) for the length-grouped batches of an sft stage vs random batches
of the same examples (within each kind), same batch size.

    python bench/padding.py runs/<run>/sft     # → prints JSON, writes runs/<run>/sft/padding.json
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gream_pipeline.sft.llamafactory_glue import DATA_FILE, make_batches  # noqa: E402


def main(sft_dir: Path) -> dict:
    from transformers import AutoTokenizer

    schedule = json.loads((sft_dir / "dataset" / "schedule.json").read_text())
    rows = [json.loads(line) for line in (sft_dir / "dataset" / DATA_FILE).read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(sft_dir / "model")
    batch = schedule["batch_size"]
    steps = schedule["steps"][: schedule["steps_per_epoch"]]  # epoch 1
    lengths = []
    for k in range(len(steps)):
        block = rows[k * batch:(k + 1) * batch]
        texts = [tok.apply_chat_template([{"role": "system", "content": r["system"]},
                                          {"role": "user", "content": r["conversations"][0]["value"]},
                                          {"role": "assistant", "content": r["conversations"][1]["value"]}],
                                         tokenize=False) for r in block]
        lengths.append([len(ids) for ids in tok(texts)["input_ids"]])
    flat = [n for b in lengths for n in b]
    real = sum(flat)
    grouped = sum(batch * max(b) for b in lengths)
    plain = 0  # random batches within each kind (batches are homogeneous: alignment or reasoning)
    for kind in {s["kind"] for s in steps}:
        pool = [n for s, b in zip(steps, lengths) if s["kind"] == kind for n in b]
        plain += sum(batch * max(pool[i] for i in b) for b in make_batches(len(pool), batch, random.Random(0)))
    res = {"run": str(sft_dir), "epoch1_steps": len(steps), "batch": batch, "real_tokens": real,
           "computed_tokens_length_grouped": grouped, "computed_tokens_random_batches": plain,
           "padding_share_grouped": round(1 - real / grouped, 4), "padding_share_random": round(1 - real / plain, 4),
           "compute_ratio_random_over_grouped": round(plain / grouped, 3)}
    (sft_dir / "padding.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main(Path(sys.argv[1]))
