"""Why reasoning samples do not close on their own: the section each forced sample stopped in, how it stopped
(thinking budget reached, or the end-of-turn token before ``<answer>``) and whether it was repeating itself.

    python bench/reason_failures.py runs/demo_cpu-scientific [--split test] [--examples 3]

Reads ``eval/<split>/reason/predictions.jsonl`` (needs ``eval.save_texts=true``, the default), and counts thinking
tokens with the evaluated checkpoint's tokenizer (``eval/metrics.json``) against the eval stage's
``eval.think_budget`` (``eval/manifest.json``). The natural-close rate comes with a 95 % bootstrap interval over users.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from data_synth.prompts import REWRITE_HEADING, STEP_HEADINGS, THINK_CLOSE, THINK_OPEN
from gream_pipeline.eval.metrics import paired_bootstrap
from gream_pipeline.eval.reasoning import close_suffix
from gream_pipeline.semantic_ids import ANSWER_OPEN

SECTIONS = [THINK_OPEN, *STEP_HEADINGS, THINK_CLOSE, REWRITE_HEADING]
NAMES = ["before <think>", "<think>", "step 1", "step 2", "step 3", "after </think>", "rewrite / recommendation"]


def thinking_of(text: str) -> str:
    """The model's own thinking text of a forced sample: everything before the forced ``<answer>`` suffix (a forced
    sample holds no ``<answer>`` of its own: thinking stops at the first one)."""
    head = text[: text.rfind(ANSWER_OPEN)]
    for suffix in ("\n" + THINK_CLOSE + "\n\n", " "):
        if head.endswith(suffix) and close_suffix(head[: len(head) - len(suffix)]) == suffix + ANSWER_OPEN:
            return head[: len(head) - len(suffix)]
    return head


def section(text: str) -> str:
    """The last section heading the text reached (in the Appendix C order)."""
    reached = 0
    for i, mark in enumerate(SECTIONS, start=1):
        if mark in text:
            reached = i
    return NAMES[reached]


def repeating(text: str, tail: int = 400) -> bool:
    """Whether the end of the text repeats one line (or one 30-character span) three times or more."""
    end = text[-tail:]
    lines = [x.strip() for x in end.splitlines() if x.strip()]
    if lines and max(Counter(lines).values()) >= 3:
        return True
    spans = Counter(end[i: i + 30] for i in range(0, max(0, len(end) - 30), 5))
    return bool(spans) and max(spans.values()) >= 3


def close_rate_interval(closed_per_user: list[list[bool]], seed: int = 0) -> list[float]:
    """[low, high] of the 95 % percentile bootstrap over users of the mean per-user natural-close rate."""
    rates = [sum(flags) / len(flags) for flags in closed_per_user if flags]
    b = paired_bootstrap(rates, [0.0] * len(rates), seed=seed)
    return [round(b["lo"], 4), round(b["hi"], 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--examples", type=int, default=3)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    eval_dir = args.run / "eval"
    budget = int(json.loads((eval_dir / "manifest.json").read_text())["config"]["eval"]["think_budget"])
    tok = AutoTokenizer.from_pretrained(json.loads((eval_dir / "metrics.json").read_text())["checkpoint"])
    recs = [json.loads(x) for x in (eval_dir / args.split / "reason" / "predictions.jsonl").open()]
    total, forced, where, how, loops, shown, closed = 0, 0, Counter(), Counter(), 0, [], []
    for rec in recs:
        reason = rec["reason"]
        if "closed_naturally" not in reason:
            raise SystemExit("predictions.jsonl has no per-sample closed_naturally flags: re-run the eval stage")
        closed.append(list(reason["closed_naturally"]))
        for text, natural in zip(reason["texts"], reason["closed_naturally"]):
            total += 1
            if natural:
                continue
            forced += 1
            think = thinking_of(text)
            n_tokens = len(tok(think, add_special_tokens=False)["input_ids"])
            where[section(think)] += 1
            how["budget" if n_tokens >= budget - 1 else "end of turn"] += 1
            loops += repeating(think)
            if len(shown) < args.examples:
                shown.append(think[-300:])
    report = {"run": str(args.run), "users": len(recs), "samples": total, "forced": forced,
              "natural_close_rate": round(1 - forced / total, 4) if total else None,
              "natural_close_ci95_over_users": close_rate_interval(closed) if total else None,
              "forced_by": dict(how), "forced_in_section": dict(where.most_common()), "forced_repeating": loops}
    print(json.dumps(report, indent=1))
    for tail in shown:
        print("--- end of a forced sample ---\n" + tail)


if __name__ == "__main__":
    main()
