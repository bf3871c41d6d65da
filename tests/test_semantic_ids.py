"""The semantic-ID token grammar (gream_pipeline/semantic_ids.py): hand-computed cases and the one answer rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gream_pipeline import semantic_ids as sid
from gream_pipeline.semantic_ids import (
    code_of,
    format_id,
    format_token,
    id_tokens,
    is_valid_id,
    parse_answer,
    parse_tokens,
    slot_size,
    split_ids,
    vocabulary,
)

REPO = Path(__file__).resolve().parents[1]
T4 = ["<a_1>", "<b_2>", "<c_3>", "<d_4>"]


# ------------------------------------------------------------------------------------------ tokens and IDs


def test_format_and_code_of_hand_cases():
    assert format_token(0, 12) == "<a_12>" and format_token(3, 0) == "<d_0>" and format_token(25, 7) == "<z_7>"
    assert code_of("<b_200>") == (1, 200) and code_of("<e_0>") == (4, 0)
    assert id_tokens([12, 200, 7, 31]) == ["<a_12>", "<b_200>", "<c_7>", "<d_31>"]
    assert format_id([12, 200, 7, 31]) == "<a_12><b_200><c_7><d_31>"
    assert id_tokens([]) == [] and format_id([]) == ""


@pytest.mark.parametrize("level, code", [(-1, 0), (26, 0), (0, -1)])
def test_format_token_rejects_out_of_range(level, code):
    with pytest.raises(ValueError):
        format_token(level, code)


@pytest.mark.parametrize("bad", ["<a_01>", "<A_1>", "<|a_1|>", "a_1", "<a_1><b_2>", "<a_>", "<a_-1>", "<aa_1>",
                                 " <a_1>", "<a_1> ", 5, None])
def test_code_of_rejects_non_tokens(bad):
    with pytest.raises(ValueError):
        code_of(bad)


def test_round_trips():
    for token in vocabulary([3, 11, 2, 105], 4):
        assert format_token(*code_of(token)) == token
    codes = [0, 10, 255, 3, 1]
    assert parse_tokens(format_id(codes)) == id_tokens(codes)
    assert [code_of(t)[1] for t in id_tokens(codes)] == codes


def test_parse_tokens_finds_only_canonical_tokens():
    assert parse_tokens("x <a_1> y<b_22><c_01><d_x><E_1><|f_2|>") == ["<a_1>", "<b_22>"]
    assert parse_tokens("<a_0><b_10>") == ["<a_0>", "<b_10>"]
    assert parse_tokens("no ids") == []


def test_vocabulary_order_and_size():
    assert vocabulary([2, 3], 2) == ["<a_0>", "<a_1>", "<b_0>", "<b_1>", "<b_2>", "<c_0>", "<c_1>"]
    assert vocabulary([2], 0) == ["<a_0>", "<a_1>"]
    big = vocabulary([256] * 4, 8)
    assert len(big) == 4 * 256 + 8 == 1032 and len(set(big)) == 1032
    assert big[255] == "<a_255>" and big[256] == "<b_0>" and big[-1] == "<e_7>"


def test_slot_size():
    index = {"0": ["<a_0>", "<b_0>"], "1": ["<a_0>", "<b_1>", "<c_0>"], "2": ["<a_0>", "<b_1>", "<c_2>"]}
    assert slot_size(index, 2) == 3
    assert slot_size(list(index.values()), 2) == 3
    assert slot_size({"0": ["<a_0>", "<b_0>"]}, 2) == 0 and slot_size({}, 4) == 0
    with pytest.raises(ValueError):  # the slot must carry the letter after the last level
        slot_size({"0": ["<a_0>", "<b_0>", "<d_1>"]}, 2)


def test_is_valid_id():
    assert is_valid_id("<a_1><b_2>") and is_valid_id(T4 + ["<e_0>"]) and is_valid_id(("<a_0>",))
    for bad in ["", [], "<b_1><a_2>", "<a_1><c_2>", "<a_1> <b_2>", "<a_1><b_2>x", ["<a_1>", "<b_02>"],
                ["<a_1><b_2>"], None, 12]:
        assert not is_valid_id(bad), bad


def test_split_ids_starts_an_id_at_each_level_a_token():
    assert split_ids("<a_1><b_2> <a_3><b_4><c_0>") == ["<a_1><b_2>", "<a_3><b_4><c_0>"]
    assert split_ids(["<a_1>", "<b_2>", "<a_3>"]) == ["<a_1><b_2>", "<a_3>"]
    assert split_ids("<b_1><a_2><b_3>") == ["<b_1>", "<a_2><b_3>"] and split_ids("") == []


# ------------------------------------------------------------------------------------------ answers


def test_parse_answer_block_and_direct_mode():
    assert parse_answer("<think>history <a_9><b_9></think> so <answer><a_1><b_2><c_3><d_4></answer>") == T4
    assert parse_answer("<a_1><b_2><c_3><d_4><e_0>") == T4 + ["<e_0>"]  # direct mode
    assert parse_answer("I recommend <a_1><b_2>") is None  # no block, prose around the tokens
    assert parse_answer("the guitar") is None and parse_answer("") is None and parse_answer("   ") is None


def test_parse_answer_last_block_wins():
    assert parse_answer("<answer><a_5></answer> no, <answer><a_1><b_2></answer>") == ["<a_1>", "<b_2>"]
    # the last complete block decides even when it is invalid and an earlier one was fine
    assert parse_answer("<answer><a_1></answer> hmm <answer>the guitar</answer>") is None
    # an unclosed block after a complete one does not count
    assert parse_answer("<answer><a_1></answer> <answer><a_2>") == ["<a_1>"]
    # the nearest <answer> before the last </answer> opens the block
    assert parse_answer("<answer>x <answer><a_1></answer>") == ["<a_1>"]
    assert parse_answer("</answer><answer><a_1>") is None and parse_answer("<answer><a_1><b_2>") is None


def test_parse_answer_whitespace():
    assert parse_answer("<answer>\n <a_1>\t<b_2> \n</answer> trailing") == ["<a_1>", "<b_2>"]
    assert parse_answer("  <a_1>\n<b_2> ") == ["<a_1>", "<b_2>"]
    assert parse_answer("<answer>< a_1 ></answer>") is None  # no whitespace inside a token


@pytest.mark.parametrize("body", ["", "item <a_1>", "<a_1>, <b_2>", "<a_1><b_2>.", "<a_1><b_2><d_x>", "<a_1<b_2>>",
                                  "<answer>", "<A_1>"])
def test_parse_answer_junk_inside_block(body):
    assert parse_answer(f"<answer>{body}</answer>") is None


def test_parse_answer_level_order():
    assert parse_answer("<answer><b_1><a_2></answer>") is None
    assert parse_answer("<answer><a_1><c_2></answer>") is None  # skipped level
    assert parse_answer("<answer><a_1><a_2></answer>") is None
    # direct mode returns the sampled tokens verbatim in any order: the reward scores their correct prefix
    assert parse_answer("<b_1><a_2>") == ["<b_1>", "<a_2>"]


def test_parse_answer_spellings():
    paper = "<answer><|a_114|><|b_202|><|c_184|><|d_188|></answer>"  # paper Appendix C
    assert parse_answer(paper) == ["<a_114>", "<b_202>", "<c_184>", "<d_188>"]
    assert parse_answer("<answer> <|a_1|> <|b_2|><c_3><d_4><e_0> </answer>") == T4 + ["<e_0>"]
    assert parse_answer("<answer><|a_053|><b_00></answer>") == ["<a_53>", "<b_0>"]
    assert parse_answer("<answer><|a_1></answer>") is None  # unbalanced pipes
    assert parse_answer("<|a_1|><|b_2|>") is None and parse_answer("<a_01>") is None  # direct mode: canonical only


@pytest.mark.parametrize("value", [None, 123, b"<a_1>", ["<a_1>"]])
def test_parse_answer_non_text(value):
    assert parse_answer(value) is None


def test_one_parser_for_reward_and_evaluation():
    from gream_pipeline.eval.answers import get_parser, local_parse_answer
    from reward_fns import srpo

    assert srpo.parse_answer is parse_answer and local_parse_answer is parse_answer
    assert get_parser() == (parse_answer, "gream_pipeline.semantic_ids")
    assert srpo.ID_TOKEN_RE is sid.TOKEN_RE


def test_index_ids_reexports_the_grammar():
    from gream_pipeline.index import ids

    assert ids.id_tokens is id_tokens and ids.vocabulary is vocabulary and ids.slot_size is slot_size


def test_imports_stay_light():
    code = ("import sys, gream_pipeline.semantic_ids; assert 'numpy' not in sys.modules, 'numpy'; "
            "import reward_fns.srpo; bad = {'torch', 'transformers', 'verl'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<a_1><b_2><c_3><d_4><a_5><b_6>", ["<a_1>", "<b_2>", "<c_3>", "<d_4>"]),  # the next item is not the answer
        ("<a_1><b_2><c_3><d_4><e_0><a_5>", ["<a_1>", "<b_2>", "<c_3>", "<d_4>", "<e_0>"]),  # conflict slot
        (" <a_1><b_2>", ["<a_1>", "<b_2>"]),
        ("<a_1><b_2><a_7><b_1><c_0><d_2>", ["<a_1>", "<b_2>"]),  # a level-a token starts the following item
        ("<a_1><c_2>", ["<a_1>"]),  # out of level order: the ID ends there
        ("<a_1><b_2> and more", ["<a_1>", "<b_2>"]),
        ("<b_1><c_2>", None),
        ("", None),
        ("x<a_1>", None),
        (None, None),
    ],
)
def test_first_id_of_a_continuation(text, expected):
    assert sid.first_id(text) == expected
