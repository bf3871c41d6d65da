"""bench/reason_failures.py: the model's own thinking of a forced sample, the section it stopped in, repetition."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import reason_failures as rf  # noqa: E402
from data_synth.prompts import REWRITE_HEADING, STEP_HEADINGS  # noqa: E402
from gream_pipeline.eval.reasoning import close_suffix  # noqa: E402

ANSWER = "<a_1><b_2><c_3><d_4></answer>"


def forced(think: str) -> str:
    """A forced sample's saved text: the model's thinking, the forced close, a constrained answer."""
    return think + close_suffix(think) + ANSWER


def test_thinking_of_strips_exactly_the_forced_close():
    open_think = f"<think>\n{STEP_HEADINGS[0]}\n- The user has"
    assert rf.thinking_of(forced(open_think)) == open_think  # "\n</think>\n\n<answer>" removed
    after = f"<think>\n{STEP_HEADINGS[2]}\nx\n</think>\n\n{REWRITE_HEADING} <a_9><b_9><c_9><d_9>"
    assert rf.thinking_of(forced(after)) == after  # " <answer>" removed
    ends_in_space = after + " "
    assert rf.thinking_of(forced(ends_in_space)) == ends_in_space


def test_section_is_the_last_heading_reached():
    assert rf.section("no tags at all") == "before <think>"
    assert rf.section(f"<think>\n{STEP_HEADINGS[0]}\n{STEP_HEADINGS[1]}\n") == "step 2"
    assert rf.section(f"<think>\n{STEP_HEADINGS[2]}\n</think>\n") == "after </think>"
    assert rf.section(f"<think>{STEP_HEADINGS[2]}</think>{REWRITE_HEADING} x") == "rewrite / recommendation"


def test_repeating_finds_a_looping_end_only():
    assert rf.repeating("the above analysis, " * 6)
    assert rf.repeating("intro\n- Brands: X.\n- Brands: X.\n- Brands: X.\n")
    assert not rf.repeating(f"<think>\n{STEP_HEADINGS[0]}\n- The user has interacted with 4 items in order.\n"
                            f"- Product types: Beakers (2), Tape (1).\n- Most recent: <a_1><b_2><c_3><d_4> (Tape).")


def test_close_rate_interval_brackets_the_rate_and_collapses_when_all_close():
    assert rf.close_rate_interval([[True] * 10] * 30) == [1.0, 1.0]
    users = [[True] * 10] * 20 + [[True] * 5 + [False] * 5] * 20  # mean per-user rate 0.75
    lo, hi = rf.close_rate_interval(users)
    assert 0.6 < lo < 0.75 < hi < 0.9
