"""Tiny random-weight Qwen3 checkpoints and fake indexes for tests and decoding benchmarks.

The tokenizer is a byte-level BPE trained with `tokenizers` on the given texts, wrapped in PreTrainedTokenizerFast,
with ChatML-style specials and the semantic-ID tokens added as single (non-special) tokens.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ANSWER_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
DEFAULT_TEXT = (
    "The user has interacted with items in chronological order. Can you predict the next possible item that "
    "the user may expect? You are an AI recommendation model. Analyze the purchase history, recommend the next "
    "item and enclose it in answer tags. Step 1 Extraction of Behavioral Evidence Step 2 Modeling of Latent "
    "Preferences Step 3 Inference of User Intent and Goal Formulation. Let's rewrite user's purchase history."
)


def id_tokens(levels: str = "abcd", codes: int = 256, conflict: int = 8) -> list[str]:
    """`<a_0>`…`<d_255>` plus the conflict-slot tokens `<e_0>`…."""
    toks = [f"<{lv}_{i}>" for lv in levels for i in range(codes)]
    nxt = chr(ord(levels[-1]) + 1)
    return toks + [f"<{nxt}_{i}>" for i in range(conflict)]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 300, extra_tokens: Sequence[str] = ()):
    """Byte-level BPE tokenizer with ChatML specials, `<answer>` tags and `extra_tokens` as single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    fast.add_tokens(ANSWER_TAGS + list(extra_tokens))
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny_model(out_dir: Path, texts: Iterable[str] = (DEFAULT_TEXT,), vocab_size: int = 300,
                     hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, intermediate: int = 128,
                     extra_tokens: Sequence[str] | None = None, seed: int = 0) -> Path:
    """Write a random-weight Qwen3 causal LM + tokenizer to `out_dir` and return it."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = build_tokenizer(texts, vocab_size, id_tokens() if extra_tokens is None else extra_tokens)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
                      intermediate_size=intermediate, max_position_embeddings=4096, tie_word_embeddings=True,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    with torch.no_grad():  # larger random logits: clearer score gaps, fewer near-ties in tests
        model.lm_head.weight.mul_(4.0)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def fake_index(n_items: int, codes: Sequence[int] = (256, 256, 256, 256), seed: int = 0) -> dict[str, list[str]]:
    """Random hierarchical index following CONVENTIONS.md: items sharing all level codes get a conflict token
    (`<e_0>`, `<e_1>`, … in item-id order), so IDs are unique and prefix-free."""
    rng = random.Random(seed)
    levels = "abcdefgh"[: len(codes)]
    raw = {str(i): tuple(rng.randrange(c) for c in codes) for i in range(n_items)}
    groups: dict[tuple[int, ...], list[str]] = {}
    for item, code in raw.items():
        groups.setdefault(code, []).append(item)
    slot = "abcdefghi"[len(codes)]
    index: dict[str, list[str]] = {}
    for code, items in groups.items():
        base = [f"<{lv}_{c}>" for lv, c in zip(levels, code)]
        for j, item in enumerate(sorted(items, key=int)):
            index[item] = base + [f"<{slot}_{j}>"] if len(items) > 1 else list(base)
    return dict(sorted(index.items(), key=lambda kv: int(kv[0])))


def fake_examples(index: dict[str, list[str]], n_users: int, history: int = 20, seed: int = 0) -> list[dict]:
    """Random leave-one-out style examples `{"user","history","target"}` over the index's items."""
    rng = random.Random(seed)
    items = [int(i) for i in index]
    out = []
    for u in range(n_users):
        seq = rng.sample(items, history + 1)
        out.append({"user": str(u), "history": seq[:-1], "target": seq[-1]})
    return out
