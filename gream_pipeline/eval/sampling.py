"""Batched temperature / nucleus sampling with a cached prompt: the HF engine's ``sample`` (reasoning mode's
thinking phase, the unconstrained variant).

Semantics are those of ``model.generate(do_sample=True, temperature=T, top_p=p, top_k=0)`` and of vLLM: each step
divides the logits by ``T``, keeps the smallest set of most likely tokens whose probability reaches ``p`` (a token is
kept while the probability of the tokens ranked above it is < ``p``; the most likely token always) and draws from
that set renormalised; ``T <= 0`` is greedy (argmax). A sample ends at an end-of-sequence id (not part of its tokens)
or once its text contains a stop string (kept, as servers keep it with ``include_stop_str_in_output``), or after
``max_new_tokens``. ``logit_bias`` ({token id: bias}) is added to the logits before temperature and top-p, as the
OpenAI API's ``logit_bias`` (and vLLM's / SGLang's) is: −100 bans a token.

Why not ``generate``: on CPU its top-p warper sorts the whole vocabulary of every row at every step and its draw runs
over the whole vocabulary; that dominated the thinking phase. :func:`nucleus` finds the same set from a top-k
partial sort (widened until it provably holds the whole nucleus) and the draw runs over those candidates only. The
prompt is encoded once per prompt and its KV cache repeated per sample; finished samples leave the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .beam import left_pad

CANDIDATES = 64  # first top-k width tried by nucleus(); doubled until it holds every row's nucleus


def nucleus(probs: torch.Tensor, top_p: float, k: int = CANDIDATES) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-p sets of the rows of ``probs`` [R, V]: (token ids [R, k'], their probabilities with 0 outside the set),
    most likely first. Exact: ``k'`` grows until the top-k' mass of every row reaches ``top_p``."""
    vocab = probs.shape[-1]
    k = min(max(1, k), vocab)
    while True:
        p, ids = probs.topk(k, dim=-1)
        if k == vocab or bool((p.sum(-1) >= top_p).all()):
            break
        k = min(2 * k, vocab)
    keep = (p.cumsum(-1) - p) < top_p
    keep[:, 0] = True
    return ids, torch.where(keep, p, torch.zeros_like(p))


def draw(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """Next token of each row of ``logits`` [R, V] (module docstring)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    ids, p = nucleus(probs, top_p)
    return ids.gather(1, torch.multinomial(p, 1, generator=generator)).squeeze(1)


class StopText:
    """Whether a sample's text contains a stop string, checked only after tokens that can end one: the tail of the
    sample (enough tokens to hold the longest stop string) is decoded when the newest token's text holds the last
    character of a stop string (or an incomplete UTF-8 byte)."""

    def __init__(self, tokenizer, stop: Sequence[str]):
        self.tok, self.stop = tokenizer, [s for s in stop if s]
        ends = {s[-1] for s in self.stop}
        pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))]) if self.stop else []
        self.may_end = {i for i, text in enumerate(pieces) if "\ufffd" in text or any(c in text for c in ends)}
        self.window = max((len(s) for s in self.stop), default=0) + 1  # a token is at least one character

    def __call__(self, tokens: list[int]) -> bool:
        if not self.stop or tokens[-1] not in self.may_end:
            return False
        tail = self.tok.decode(tokens[-self.window:], skip_special_tokens=False)
        return any(s in tail for s in self.stop)


@torch.no_grad()
def sample(model, prompts: Sequence[Sequence[int]], n: int, temperature: float, top_p: float, max_new_tokens: int,
           seed: int, end_ids: set[int], stop_text: StopText | None, pad_id: int,
           logit_bias: dict[int, float] | None = None) -> list[list[int]]:
    """``n`` samples per prompt, as generated token ids (row ``i * n + j`` is sample ``j`` of prompt ``i``)."""
    device = next(model.parameters()).device
    if logit_bias:
        bias_ids, bias = torch.tensor(list(logit_bias)), torch.tensor([float(b) for b in logit_bias.values()])
    ids, mask = left_pad(prompts, pad_id)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    rows = torch.arange(len(prompts)).repeat_interleave(n)
    if n > 1:
        cache.reorder_cache(rows.to(device))
    logits = out.logits[:, -1, :].float().cpu()[rows]
    mask, last = mask[rows], pos[rows, -1]
    generator = torch.Generator().manual_seed(seed)
    tokens: list[list[int]] = [[] for _ in range(len(rows))]
    active = list(range(len(rows)))
    for step in range(max_new_tokens):
        if logit_bias:
            logits[:, bias_ids] += bias
        nxt = draw(logits, temperature, top_p, generator)
        keep = []
        for a, (row, t) in enumerate(zip(active, nxt.tolist())):
            if t in end_ids:
                continue
            tokens[row].append(t)
            if stop_text is None or not stop_text(tokens[row]):
                keep.append(a)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(active):
            sel = torch.tensor(keep)
            cache.reorder_cache(sel.to(device))
            active = [active[a] for a in keep]
            nxt, mask, last = nxt[sel], mask[sel], last[sel]
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype)], 1)
        last = last + 1
        out = model(input_ids=nxt[:, None].to(device), attention_mask=mask.to(device),
                    position_ids=last[:, None].to(device), past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float().cpu()
    return tokens
