"""Trie-constrained beam search on a tiny random Qwen3:
exact against exhaustive scoring of all valid IDs, and the same top-10 as generate(prefix_allowed_tokens_fn=…)."""

import collections

import pytest
import torch

from gream_pipeline.eval.beam import (generate_beam_baseline, score_all_ids, stepwise_trie_beam,
                                      trie_beam_search)
from gream_pipeline.eval.prompts import default_direct_prompt, render
from gream_pipeline.eval.trie import IDCatalog, TokenTrie, token_ids_for
from tests.fixtures.tiny import build_tiny_model, fake_index


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    d = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    index = fake_index(48, codes=(3, 3, 3, 4), seed=1)  # small code space: shared prefixes and conflict slots
    cat = IDCatalog.from_index(index)
    t2i = token_ids_for(tok, cat)
    trie = TokenTrie.build(cat, t2i)
    histories = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10, 11], [12]]  # different lengths: left padding in the batch
    prompts = [render(tok, default_direct_prompt([cat.item_to_id[str(i)] for i in h])) for h in histories]
    id_tok = [[t2i[t] for t in toks] for toks in cat.tokens]
    return model, tok, cat, trie, prompts, id_tok


def test_index_has_variable_length_ids(tiny):
    _, _, cat, trie, _, _ = tiny
    lengths = collections.Counter(len(t) for t in cat.tokens)
    assert lengths[4] > 0 and lengths[5] > 0
    assert trie.max_depth == 5


def test_trie_beam_equals_exhaustive_scoring(tiny):
    model, tok, cat, trie, prompts, id_tok = tiny
    n_ids = len(cat.ids)
    got = trie_beam_search(model, prompts, trie, num_beams=64, top_k=n_ids, pad_id=tok.pad_token_id)
    for u, prompt in enumerate(prompts):
        exact = score_all_ids(model, prompt, id_tok, pad_id=tok.pad_token_id)
        assert len(got[u]) == n_ids  # beams ≥ #IDs: every ID is finished exactly once
        order = sorted(range(n_ids), key=lambda i: -exact[i])
        assert [i for i, _ in got[u][:10]] == order[:10]
        for i, s in got[u]:
            assert s == pytest.approx(exact[i], abs=1e-4)


def test_trie_beam_matches_generate_baseline(tiny):
    model, tok, cat, trie, prompts, _ = tiny
    fast = trie_beam_search(model, prompts, trie, num_beams=20, top_k=10, pad_id=tok.pad_token_id)
    base = generate_beam_baseline(model, prompts, trie, num_beams=20, top_k=10, pad_id=tok.pad_token_id,
                                  eos_id=tok.eos_token_id)
    for f, b in zip(fast, base):
        assert len(f) == 10
        assert [i for i, _ in f] == [i for i, _ in b]
        assert [s for _, s in f] == pytest.approx([s for _, s in b], abs=1e-4)
        assert len({i for i, _ in f}) == 10  # no duplicates; indices are catalog IDs, hence valid


def test_stepwise_beam_matches_fast_path(tiny):
    """The oracle-driven search (used for vLLM / servers) equals the cached fast path."""
    model, tok, _, trie, prompts, _ = tiny
    calls = []

    @torch.no_grad()
    def oracle(reqs):
        calls.append(len(reqs))
        out = []
        for ids, allowed in reqs:
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
            out.append({a: float(lp[a]) for a in allowed})
        return out

    fast = trie_beam_search(model, prompts[:2], trie, num_beams=8, top_k=5, pad_id=tok.pad_token_id)
    slow = stepwise_trie_beam(prompts[:2], trie, oracle, num_beams=8, top_k=5)
    for f, s in zip(fast, slow):
        assert [i for i, _ in f] == [i for i, _ in s]
        assert [x for _, x in f] == pytest.approx([x for _, x in s], abs=1e-4)
    assert calls[0] == 2 and max(calls) <= 2 * 8
