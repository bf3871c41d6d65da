"""Reasoning mode: thinking budget, trie-constrained answers, answer ranking — one implementation for the HF engine
and the server engines (stand-ins reproducing vLLM and SGLang semantics, fixtures/engine_servers.py)."""

import json
import math
import random

import pytest

from gream_pipeline.eval import evaluate
from gream_pipeline.eval.engines import HFEngine, OpenAIEngine, VLLMEngine
from gream_pipeline.eval.prompts import default_reason_prompt, render
from gream_pipeline.eval.reasoning import (
    choose_token,
    close_suffix,
    constrained_answers,
    early_end_bias,
    rank_answers,
    reason_decode,
    thinking_text,
)
from gream_pipeline.eval.trie import IDCatalog, TokenTrie, token_ids_for
from gream_pipeline.semantic_ids import parse_answer
from tests.fixtures.configs import engine_config, eval_config
from tests.fixtures.engine_servers import EngineServer
from tests.fixtures.tiny import build_tiny_model, fake_examples, fake_index

# ------------------------------------------------------------------------------------------------ pure pieces

def test_close_suffix_and_thinking_text():
    assert close_suffix("<think>\nStep 1: x") == "\n</think>\n\n<answer>"
    assert close_suffix("<think>a</think>\n\nLet's rewrite user's purchase history: x") == " <answer>"
    assert close_suffix("<think>a</think> so: <answer>") == ""
    text = "<think>a</think> so <answer><a_1><b_2></answer> tail"
    assert thinking_text(text) == ("<think>a</think> so <answer>", True)
    assert thinking_text("<think>a") == ("<think>a", False)


class FixedRng:
    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


def test_choose_token_greedy_and_top_p_by_hand():
    lps = {7: math.log(0.2), 3: math.log(0.5), 5: math.log(0.3)}
    assert choose_token(lps, 0.0, 0.9, FixedRng()) == 3
    assert choose_token({4: -1.0, 2: -1.0}, 0.0, 1.0, FixedRng()) == 2  # ties: lowest token id
    # T=1, top_p=0.75: nucleus {3: 0.5, 5: 0.3} (mass 0.8), draw u * 0.8 against cumulative 0.5, 0.8
    assert choose_token(lps, 1.0, 0.75, FixedRng(0.6)) == 3   # 0.48 < 0.5
    assert choose_token(lps, 1.0, 0.75, FixedRng(0.7)) == 5   # 0.56 >= 0.5
    assert choose_token(lps, 1.0, 0.75, FixedRng(0.999)) == 5  # 7 is outside the nucleus
    # T=2 flattens: p ∝ sqrt(p): 0.5^.5=.7071, .3^.5=.5477, .2^.5=.4472 (sum 1.7020) → .4155, .3218, .2628
    assert choose_token(lps, 2.0, 1.0, FixedRng(0.416)) == 5  # just past token 3's share
    assert choose_token(lps, 2.0, 1.0, FixedRng(0.415)) == 3
    assert choose_token(lps, 2.0, 1.0, FixedRng(0.99)) == 7
    # the draw follows the renormalised distribution
    rng, counts = random.Random(0), {3: 0, 5: 0, 7: 0}
    for _ in range(20000):
        counts[choose_token(lps, 1.0, 1.0, rng)] += 1
    assert abs(counts[3] / 20000 - 0.5) < 0.015 and abs(counts[7] / 20000 - 0.2) < 0.015


def test_rank_answers_count_then_mean_logprob_then_first():
    answers = ["B", "A", None, "C", "A", "B", "D"]
    lps = [-3.0, -1.0, None, -0.5, -2.0, -2.0, -0.5]
    # A: 2 (mean -1.5), B: 2 (mean -2.5), C: 1 (-0.5), D: 1 (-0.5, later)
    assert rank_answers(answers, lps) == ["A", "B", "C", "D"]
    assert rank_answers([None, None], [None, None]) == []
    assert rank_answers(["X", "Y", "Y"], [None, None, None]) == ["Y", "X"]


# ----------------------------------------------------------------------------------------- engines, same answers

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = build_tiny_model(tmp_path_factory.mktemp("reason") / "model", seed=11)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    index = fake_index(60, codes=(4, 4, 3, 3), seed=12)
    cat = IDCatalog.from_index(index)
    trie = TokenTrie.build(cat, token_ids_for(tok, cat))
    prompts = [render(tok, default_reason_prompt([cat.ids[i] for i in h])) for h in ([0, 1, 2], [5, 9], [30])]
    servers = {"vllm": EngineServer(model, tok, "vllm"), "sglang": EngineServer(model, tok, "sglang")}
    for s in servers.values():
        s.start()
    hf = HFEngine(d, trie, tok, engine_config(kind="hf", dtype="float32", num_threads=1))
    yield {"dir": d, "tok": tok, "model": model, "index": index, "cat": cat, "trie": trie, "prompts": prompts,
           "servers": servers, "hf": hf}
    for s in servers.values():
        s.stop()


def _server_engine(world, flavor):
    cfg = engine_config(kind="openai", base_url=world["servers"][flavor].base_url, flavor=flavor, concurrency=2)
    return OpenAIEngine(world["trie"], world["tok"], cfg)


class Recording:
    """Wraps an engine's allowed_logprobs and records every request's allowed set per step."""

    def __init__(self, engine):
        self.engine, self.steps = engine, []

    def __call__(self, reqs):
        self.steps.append([tuple(a) for _, a in reqs])
        return self.engine.allowed_logprobs(reqs)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_servers_give_hf_constrained_answers(world, temperature):
    tok, trie = world["tok"], world["trie"]
    prefixes = [p + tok("<think>x</think> so: <answer>", add_special_tokens=False)["input_ids"]
                for p in world["prompts"]]
    hf_rec = Recording(world["hf"])
    ref = constrained_answers(prefixes, trie, hf_rec, temperature, 0.9, random.Random(5))
    valid = set(range(len(world["cat"].ids)))
    assert all(leaf in valid for _, leaf, _ in ref)
    for flavor in ("vllm", "sglang"):
        eng = _server_engine(world, flavor)
        srv = world["servers"][flavor]
        srv.requests.clear()
        rec = Recording(eng)
        got = constrained_answers(prefixes, trie, rec, temperature, 0.9, random.Random(5))
        assert rec.steps == hf_rec.steps, flavor  # same allowed-token sets per step
        assert [(t, leaf) for t, leaf, _ in got] == [(t, leaf) for t, leaf, _ in ref], flavor
        assert all(abs(a - b) < 1e-4 for (_, _, a), (_, _, b) in zip(got, ref)), flavor
        steps = [b for b in srv.requests if b.get("max_tokens") == 1 and "prompt_logprobs" not in b]
        sent = [tuple(b["allowed_token_ids"]) if flavor == "vllm" else tuple(b["custom_params"]["allowed_token_ids"])
                for b in steps]
        assert sorted(sent) == sorted(a for step in hf_rec.steps for a in step), flavor
        eng.close()


def test_greedy_answer_is_the_stepwise_argmax(world):
    import torch

    tok, trie, model = world["tok"], world["trie"], world["model"]
    prefix = world["prompts"][0] + tok(" <answer>", add_special_tokens=False)["input_ids"]
    (toks, leaf, lp), = constrained_answers([prefix], trie, world["hf"].allowed_logprobs, 0.0, 1.0, random.Random(0))
    node, ids, total = 0, list(prefix), 0.0
    with torch.no_grad():
        while trie.leaf[node] < 0:
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
            best = max(trie.children[node], key=lambda t: (float(logp[t]), -t))
            total += float(logp[best])
            ids.append(best)
            node = trie.children[node][best]
    assert toks == ids[len(prefix):] and leaf == trie.leaf[node] and lp == pytest.approx(total, abs=1e-4)


class ScriptedEngine:
    """Thinking texts fixed per sample; constrained steps from the HF engine."""

    def __init__(self, hf, texts):
        self.hf, self.texts, self.calls = hf, texts, []

    def sample(self, prompts, n, temperature, top_p, max_new_tokens, seed, stop=(), logit_bias=None):
        self.calls.append((max_new_tokens, tuple(stop), logit_bias))
        return [self.texts[:n] for _ in prompts]

    def allowed_logprobs(self, reqs):
        return self.hf.allowed_logprobs(reqs)


def test_reason_decode_closes_forces_and_counts(world):
    eos = world["tok"].eos_token
    texts = ["<think>a</think> so: <answer>", "<think>never closes", "<think>a</think>\n\nLet's rewrite: x" + eos]
    eng = ScriptedEngine(world["hf"], texts)
    out = reason_decode(eng, world["tok"], world["trie"], world["prompts"][:2], 3, 0.7, 0.9, 64, seed=3,
                        ban_early_end=False)
    assert eng.calls == [(64, ("<answer>",), None)]
    valid = set(world["cat"].ids)
    for user in out:
        assert [s.natural_close for s in user] == [True, False, False]
        assert user[0].text.startswith("<think>a</think> so: <answer>")
        assert user[1].text.startswith("<think>never closes\n</think>\n\n<answer>")
        assert user[2].text.startswith("<think>a</think>\n\nLet's rewrite: x <answer>")  # the EOS text is dropped
        for s in user:
            assert s.text.endswith("</answer>") and eos not in s.text
            ans = "".join(parse_answer(s.text))
            assert ans in valid and world["cat"].ids[s.answer_index] == ans
            assert s.generated_tokens == len(world["tok"](s.text, add_special_tokens=False)["input_ids"])


def test_early_end_ban_is_the_end_tokens_and_the_answer_close(world):
    tok = world["tok"]
    eng = ScriptedEngine(world["hf"], ["<think>a</think> so: <answer>"])
    reason_decode(eng, tok, world["trie"], world["prompts"][:1], 1, 0.7, 0.9, 16, seed=0, ban_early_end=True)
    close = tok.convert_tokens_to_ids("</answer>")
    want = {t: -100.0 for t in {tok.eos_token_id, tok.pad_token_id, close}}
    assert eng.calls == [(16, ("<answer>",), want)] and len(want) == 3
    assert early_end_bias(tok) == want


def test_logit_bias_bans_the_same_tokens_on_every_engine(world, monkeypatch):
    """Near-greedy sampling with every token of the unbiased outputs banned: no engine emits one, and the servers
    and in-process vLLM return the HF engine's texts (the bias acts before temperature and top-p everywhere)."""
    import sys

    from tests.fixtures.engine_servers import fake_vllm_module

    tok, prompts = world["tok"], world["prompts"]
    free = world["hf"].sample(prompts, 1, 1e-6, 1.0, 6, 0)
    banned = {t for user in free for t in tok(user[0], add_special_tokens=False)["input_ids"]}
    bias = {t: -100.0 for t in banned}
    ref = world["hf"].sample(prompts, 2, 1e-6, 1.0, 6, 0, logit_bias=bias)
    assert ref != free and all(t not in banned for user in ref for text in user
                               for t in tok(text, add_special_tokens=False)["input_ids"])
    for flavor in ("vllm", "sglang"):
        eng = _server_engine(world, flavor)
        assert eng.sample(prompts, 2, 1e-6, 1.0, 6, 0, logit_bias=bias) == ref, flavor
        assert world["servers"][flavor].requests[-1]["logit_bias"] == {str(t): -100.0 for t in sorted(banned)}
        eng.close()
    mod = fake_vllm_module()
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.inputs", mod.inputs)
    vllm = VLLMEngine(world["dir"], world["trie"], tok, engine_config(kind="vllm", dtype="float32"))
    assert vllm.sample(prompts, 2, 1e-6, 1.0, 6, 0, logit_bias=bias) == ref


def test_greedy_reasoning_on_hf(world):
    """T=0: both phases greedy; the n samples of a user are identical."""
    out = reason_decode(world["hf"], world["tok"], world["trie"], world["prompts"], 3, 0.0, 1.0, 4, seed=0,
                        ban_early_end=True)
    for user in out:
        assert len({(s.text, s.answer_index) for s in user}) == 1


def test_reason_decode_through_servers_matches_hf(world):
    """Near-greedy thinking (T=1e-6) within a 2-token budget: every sample is forced, both phases pick the argmax,
    so the servers' texts, answers and answer log-probs equal the HF engine's."""
    hf_out = reason_decode(world["hf"], world["tok"], world["trie"], world["prompts"], 2, 1e-6, 1.0, 2, seed=0,
                           ban_early_end=True)
    assert all(not s.natural_close and s.answer_index is not None for user in hf_out for s in user)
    for flavor in ("vllm", "sglang"):
        eng = _server_engine(world, flavor)
        out = reason_decode(eng, world["tok"], world["trie"], world["prompts"], 2, 1e-6, 1.0, 2, seed=0,
                            ban_early_end=True)
        for a, b in zip(out, hf_out):
            assert [(s.text, s.answer_index, s.natural_close) for s in a] == \
                [(s.text, s.answer_index, s.natural_close) for s in b], flavor
            assert all(abs(x.answer_logprob - y.answer_logprob) < 1e-4 for x, y in zip(a, b)), flavor
        eng.close()


# ------------------------------------------------------------------------------------------------- evaluate

def test_evaluate_reasoning_constrained_and_unconstrained(world, tmp_path):
    examples = fake_examples(world["index"], 4, history=3, seed=13)
    cfg = eval_config(modes=["reason"], batch_size=2, n_samples=4, think_budget=6, progress=False, plots=False,
                      engine={"num_threads": 1, "dtype": "float32"})
    m = evaluate(world["dir"], world["index"], examples, tmp_path / "c", cfg)
    assert m["reason"]["valid_answer_rate"] == 1.0 and m["reason"]["well_formed_rate"] == 1.0
    assert 0.0 <= m["reason"]["natural_close_rate"] <= 1.0
    assert set(m["reason_rank"]) == {f"{k}@{n}" for k in ("recall", "ndcg") for n in (1, 5, 10)}
    recs = [json.loads(x) for x in (tmp_path / "c" / "predictions.jsonl").read_text().splitlines()]
    for r in recs:
        assert len(r["reason"]["answer_logprobs"]) == 4 and r["reason"]["ranked"]
        assert set(r["reason"]["ranked"]) == set(r["reason"]["answers"])
    hits = sum(r["target_id"] in r["reason"]["ranked"][:1] for r in recs) / len(recs)
    assert m["reason_rank"]["recall@1"] == pytest.approx(hits)
    assert m["meta"]["constrain_answer"] is True and m["meta"]["think_budget"] == 6
    free = evaluate(world["dir"], world["index"], examples, tmp_path / "u",
                    eval_config(modes=["reason"], batch_size=2, n_samples=4, max_new_tokens=6, constrain_answer=False,
                                progress=False, plots=False, engine={"num_threads": 1, "dtype": "float32"}))
    assert free["reason"]["valid_answer_rate"] < 1.0  # a random model rarely writes a valid block by itself
