"""The HF engine's sampler (eval/sampling.py): exact nucleus sets, generate()'s greedy tokens, cache and padding
handled like a full forward, stop strings and end ids, determinism."""

import math
import random

import pytest
import torch

from gream_pipeline.eval.beam import left_pad
from gream_pipeline.eval.sampling import StopText, draw, nucleus, sample
from tests.fixtures.tiny import build_tiny_model


def reference_nucleus(row: torch.Tensor, top_p: float) -> set[int]:
    """generate()'s TopPLogitsWarper by hand: sort ascending, drop tokens whose cumulative mass is <= 1 - top_p."""
    p, i = row.sort()
    drop = p.cumsum(0) <= 1 - top_p
    drop[-1] = False
    return {int(t) for t, d in zip(i, drop) if not d}


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.999])
def test_nucleus_is_the_full_sort_set(top_p):
    g = torch.Generator().manual_seed(0)
    sharp = torch.softmax(torch.randn(20, 500, generator=g) * 4, -1)
    flat = torch.softmax(torch.randn(20, 500, generator=g) * 0.1, -1)  # needs far more than the first 64
    for probs in (sharp, flat):
        ids, p = nucleus(probs, top_p)
        for r in range(probs.shape[0]):
            got = {int(t) for t, q in zip(ids[r], p[r]) if q > 0}
            assert got == reference_nucleus(probs[r], top_p)
            assert torch.allclose(p[r][p[r] > 0], probs[r][sorted(got, key=lambda t: -probs[r][t])])


def test_draw_frequencies_match_the_renormalised_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    g = torch.Generator().manual_seed(1)
    got = torch.bincount(draw(logits, 1.0, 0.8, g), minlength=4).tolist()
    assert got[2] + got[3] == 0  # 0.5 + 0.3 reaches 0.8: the rest is outside
    assert abs(got[0] / 4000 - 0.625) < 4 * math.sqrt(0.625 * 0.375 / 4000)
    t = draw(torch.log(torch.tensor([[0.5, 0.3, 0.2]])), 0.0, 0.5, g)
    assert t.tolist() == [0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = build_tiny_model(tmp_path_factory.mktemp("sampling") / "model", seed=3)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    rng = random.Random(4)
    prompts = [[rng.randrange(5, len(tok)) for _ in range(n)] for n in (3, 9, 6)]  # left padding differs per row
    return tok, model, prompts


def test_greedy_equals_generate(tiny):
    tok, model, prompts = tiny
    end = {tok.eos_token_id}
    ids, mask = left_pad(prompts, tok.pad_token_id)
    ref = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12,
                         pad_token_id=tok.pad_token_id, eos_token_id=sorted(end))[:, ids.shape[1]:].tolist()
    ref = [r[:r.index(tok.eos_token_id)] if tok.eos_token_id in r else r for r in ref]
    assert sample(model, prompts, 1, 0.0, 1.0, 12, 0, end, None, tok.pad_token_id) == ref


def test_samples_follow_the_uncached_model(tiny):
    """Every sampled token lies in the nucleus of a full, unpadded forward over prompt + sample so far: the
    repeated, shrinking KV cache and the positions of left-padded rows change nothing."""
    tok, model, prompts = tiny
    out = sample(model, prompts, 3, 1.0, 0.6, 8, 7, set(), None, tok.pad_token_id)
    assert len(out) == 9 and all(len(s) == 8 for s in out)
    for row, toks in enumerate(out):
        seq = list(prompts[row // 3])
        for t in toks:
            with torch.no_grad():
                probs = torch.softmax(model(input_ids=torch.tensor([seq])).logits[0, -1].float(), -1)
            assert t in reference_nucleus(probs, 0.6)
            seq.append(t)
    assert out == sample(model, prompts, 3, 1.0, 0.6, 8, 7, set(), None, tok.pad_token_id)  # seeded
    assert out != sample(model, prompts, 3, 1.0, 0.6, 8, 8, set(), None, tok.pad_token_id)


def test_end_ids_are_dropped_and_stop_strings_kept(tiny):
    tok, model, prompts = tiny
    free = sample(model, prompts, 2, 1.5, 1.0, 10, 0, set(), None, tok.pad_token_id)
    first = free[0][0]
    ended = sample(model, prompts, 2, 1.5, 1.0, 10, 0, {first}, None, tok.pad_token_id)
    assert ended[0] == [] and all(first not in s for s in ended)
    solo = sample(model, prompts[1:], 1, 1.5, 1.0, 10, 0, set(), None, tok.pad_token_id)[0]
    stop = tok.decode(solo[:3])[-2:]  # completed by the third token at the latest
    alone = sample(model, prompts[1:], 1, 1.5, 1.0, 10, 0, set(), StopText(tok, [stop]), tok.pad_token_id)[0]
    assert alone == solo[:len(alone)] and 1 <= len(alone) <= 3 and stop in tok.decode(alone)
    stopped = sample(model, prompts, 2, 1.5, 1.0, 10, 0, set(), StopText(tok, [stop]), tok.pad_token_id)
    for s in stopped:  # each sample ends at the token that completes the stop string, or runs to the budget
        assert stop not in tok.decode(s[:-1])
        assert stop in tok.decode(s) or len(s) == 10


def test_logit_bias_is_added_before_the_draw(tiny):
    """−100 on the greedy first token makes the runner-up the first token; +100 on any token forces it."""
    tok, model, prompts = tiny
    ids, mask = left_pad(prompts[:1], tok.pad_token_id)
    with torch.no_grad():
        first = model(input_ids=ids, attention_mask=mask).logits[0, -1].float()
    best, second = first.topk(2).indices.tolist()
    out = sample(model, prompts[:1], 1, 0.0, 1.0, 1, 0, set(), None, tok.pad_token_id, {best: -100.0})
    assert out == [[second]]
    forced = int(first.argmin())
    out = sample(model, prompts[:1], 4, 1.0, 0.9, 3, 0, set(), None, tok.pad_token_id, {forced: 100.0})
    assert all(s == [forced] * 3 for s in out)
