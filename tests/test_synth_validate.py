"""Validator of reasoning/enrichment outputs (data_synth/validate.py) on hand-written and generated texts."""

import pytest

from data_synth import offline, prompts
from data_synth.validate import Invalid, Limits, ids_in, validate_enrichment, validate_reasoning
from tests.fixtures.servers import INVENTED_ID, reasoning_text

H = ["<a_1><b_2><c_3><d_4>", "<a_5><b_6><c_7><d_8>", "<a_9><b_10><c_11><d_12><e_0>"]
T = "<a_13><b_14><c_15><d_16>"
KNOWN = frozenset(H + [T, "<a_9><b_10><c_11><d_12><e_1>"])


def paper_style(rewrite=f"{H[0]} (Tuner), {H[2]} (Strings)", answer=T, step2=None, tail="", between=""):
    """A response shaped like the paper's Appendix C examples (markdown headings, bullets)."""
    step2 = step2 or "- (1) Interest in music production.\n- (2) Preference for compact gear."
    return (f"<think>\n\n**Step 1: Extraction of Behavioral Evidence:**\n\nThe user bought a tuner {H[0]} and "
            f"strings.\n\n**Step 2: Modeling of Latent Preferences:**\n\n{step2}\n\n"
            f"**Step 3: Inference of User Intent and Goal Formulation:**\n\nThe user may upgrade their amp setup.\n\n"
            f"</think>\n{between}\nLet's rewrite user's purchase history: {rewrite}.\n\n"
            f"Based on the above analysis, the recommended product is <answer>{answer}</answer>{tail}")


def reason(text, **kw):
    return validate_reasoning(text, H, T, KNOWN, **kw)


def reason_fails(text, **kw) -> str:
    with pytest.raises(Invalid) as info:
        reason(text, **kw)
    return info.value.reason


def test_paper_style_output_passes_and_yields_parts():
    parsed = reason(paper_style())
    assert parsed.answer == T
    assert parsed.rewritten == [H[0], H[2]]
    assert parsed.preference == "- (1) Interest in music production.\n- (2) Preference for compact gear."
    assert parsed.steps[2] == "The user may upgrade their amp setup."


def test_bullet_list_rewrite_and_spaced_answer_tokens_pass():
    text = paper_style(rewrite=f"\n- {H[1]} (Amp)\n- {H[2]} (Strings)", answer=" <a_13> <b_14><c_15><d_16> ")
    parsed = reason(text)
    assert parsed.rewritten == [H[1], H[2]]
    assert parsed.answer == T


@pytest.mark.parametrize("text, reason_code", [
    (paper_style(answer=H[0]), "answer_mismatch"),
    (paper_style(answer=f"{T} {H[0]}"), "answer_malformed"),
    (paper_style(answer="the tuner"), "answer_malformed"),
    (paper_style(rewrite=f"{H[2]}, {H[0]}"), "rewrite_not_subsequence"),
    (paper_style(rewrite=f"{H[0]}, {H[0]}"), "rewrite_not_subsequence"),
    (paper_style(rewrite=T), "rewrite_not_subsequence"),
    (paper_style(rewrite="the tuner and the strings"), "empty_rewrite"),
    (paper_style(rewrite="<a_1><b_2><c_3>"), "unknown_id"),
    (paper_style(rewrite=f"{H[0]}{INVENTED_ID}"), "unknown_id"),
    (paper_style(rewrite="<|a_1|><|b_2|><|c_3|><|d_4|>"), "malformed_id_token"),
    (paper_style(tail="\nI hope this helps!"), "text_after_answer"),
    (paper_style(between="Summary: done.\n"), "text_before_rewrite"),
    (paper_style(step2="ok"), "step_length"),
    (paper_style().replace("**Step 2: Modeling of Latent Preferences:**", "**Step 2: Preferences**"),
     "missing_section"),
    (paper_style().replace("<think>", "", 1), "missing_section"),
    (paper_style() + paper_style(), "repeated_section"),
    ("", "empty"),
])
def test_invalid_outputs_are_rejected_with_reason(text, reason_code):
    assert reason_fails(text) == reason_code


def test_section_order_and_length_limits():
    text = paper_style()
    s1 = "**Step 1: Extraction of Behavioral Evidence:**"
    s3 = "**Step 3: Inference of User Intent and Goal Formulation:**"
    swapped = text.replace(s1, "@@").replace(s3, s1).replace("@@", s3)
    assert reason_fails(swapped) == "section_order"
    assert reason_fails(text, limits=Limits(max_chars=len(text) - 1)) == "too_long"
    assert reason(text, limits=Limits(max_chars=len(text))).answer == T


def test_justification_required():
    text = paper_style().replace("Based on the above analysis, the recommended product is ", "")
    assert reason_fails(text) == "missing_justification"


def test_forward_mode_accepts_any_known_answer():
    parsed = validate_reasoning(paper_style(answer=H[1]), H, None, KNOWN)
    assert parsed.answer == H[1]


def test_fake_server_texts_valid_and_invalid_variants():
    reasons = set()
    for h in range(8):
        assert reason(reasoning_text(H, T, h, valid=True)).answer == T
        with pytest.raises(Invalid) as info:
            reason(reasoning_text(H, T, h, valid=False))
        reasons.add(info.value.reason)
    assert reasons == {"answer_mismatch", "unknown_id", "rewrite_not_subsequence", "missing_section"}


def test_offline_template_passes_and_handles_empty_metadata():
    meta = [{"title": "Tuner <a_1>", "brand": "Snark", "categories": "Instruments,Accessories,Tuners",
             "description": "clip-on\ntuner"}, {}, {"title": "Strings", "brand": "D'Addario",
                                                   "categories": "Instruments,Accessories,Strings"}]
    target = {"title": "Tuner 2", "brand": "Snark", "categories": "Instruments,Accessories,Tuners"}
    text = offline.synth_reasoning(H, meta, T, target)
    parsed = reason(text)
    assert parsed.rewritten == [H[0], H[2]]  # shared category "Accessories" / brand; the empty item is dropped
    assert "Brand affinity" in parsed.preference or "brand" in parsed.preference
    bare = offline.synth_reasoning(H, [{}, {}, {}], T, {})
    assert reason(bare).rewritten == [H[2]]  # nothing related: keep the most recent item
    assert ids_in(bare)[-1] == T


def test_enrichment_validation():
    good = "A clip-on chromatic tuner with a bright display, accurate for guitar, bass and violin."
    assert validate_enrichment(f"<think>let me think</think>\n{good}") == good
    for text, code in [("", "empty"), ("Short.", "too_short"), (good + " <a_1>", "id_token_in_description"),
                       (good + " </answer>", "format_tag_in_description"), (good * 40, "too_long")]:
        with pytest.raises(Invalid) as info:
            validate_enrichment(text)
        assert info.value.reason == code


def test_prompt_carries_paper_system_prompt_and_reverse_target():
    msgs = prompts.reason_messages(H, [{"title": "a"}] * 3, T, {"title": "t"})
    assert msgs[0]["content"].startswith("You are an AI recommendation model.")
    assert prompts.forward_question(H) in msgs[1]["content"]
    assert f"<answer>{T}</answer>" in msgs[1]["content"]
    with pytest.raises(KeyError):
        prompts.reason_messages(H, [{}] * 3, T, {}, version="reason-v0")
