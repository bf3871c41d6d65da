"""Reasoning-mode decoding (paper §4.3, Appendix C format): think within a budget, then a trie-constrained answer.

One implementation for every engine (HF, in-process vLLM, vLLM/SGLang servers); the engines only provide
``sample`` (free sampling with stop strings) and ``allowed_logprobs`` (exact full-vocabulary log-probs of a given set
of next tokens). Used by the eval stage and by the RL stage's validation.

A sample is decoded in two phases:

1. **Thinking**: free sampling (temperature, top-p) of at most ``think_budget`` tokens, stopped by the string
   ``<answer>``. A sample that writes ``<answer>`` within the budget *closes naturally* (``natural_close_rate``).
   One that reaches the budget, or ends (EOS) without ``<answer>``, is closed by :func:`close_suffix`
   (``\\n</think>\\n\\n<answer>`` when ``</think>`` is still open, else `` <answer>``, as the training rows write
   them): forcing is a safety net, reported separately. With ``ban_early_end`` (the default) the thinking phase
   cannot end the turn before it has opened the answer: the end-of-sequence / padding tokens and ``</answer>`` get
   the logit bias −100 (:func:`early_end_bias`, the OpenAI API's ban, which vLLM and SGLang apply as HF does), so a
   sample ends only by writing ``<answer>`` itself or at the budget. This is the format's grammar (the answer comes
   before the end), not a choice of answer: the model still has to write ``<answer>`` on its own to count as a
   natural close.
2. **Answer**: token by token inside the ID trie (the same trie as direct mode), each token chosen by
   :func:`choose_token` from the exact log-probs of the trie's allowed children — greedy at temperature 0, else
   sampled from the allowed tokens' distribution (renormalised, then top-p), with one seeded generator per batch, so
   every engine that reports the same log-probs returns the same answers. The ID is followed by ``</answer>``.
   Every answer is therefore a valid ID; its log-prob (sum over its tokens) ranks tied answers in
   :func:`rank_answers`.

The paper states no reasoning length or budget (§6.1.2–6.1.3). The default budget (``eval.think_budget``,
``recipes/config.yaml``) is chosen from the length of the reasoning the model is trained on: the tokens up to
``<answer>`` of the synthesized rows (``bench/think_lengths.py``; numbers in bench/results.md). At temperature 0
both phases are greedy. ``constrain_answer=false`` keeps the unconstrained variant: one free sampling pass of
``max_new_tokens`` tokens stopped at ``</answer>``. Generated tokens are counted the same way in both variants: the
tokens of the sample's text.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from data_synth.prompts import THINK_CLOSE
from gream_pipeline.semantic_ids import ANSWER_CLOSE, ANSWER_OPEN

from .trie import TokenTrie

AllowedLogprobs = Callable[[list[tuple[list[int], list[int]]]], list[dict[int, float]]]


@dataclass
class ReasonSample:
    """One reasoning sample: its full text, whether it closed the thinking on its own, its answer (catalog ID index
    and log-prob; None when unconstrained) and its generated-token count (thinking + forced suffix + answer)."""

    text: str
    natural_close: bool
    answer_index: int | None
    answer_logprob: float | None
    generated_tokens: int


def close_suffix(text: str) -> str:
    """What forces an answer after ``text``: nothing if it already opened ``<answer>``; else ``</think>`` (when
    still open) and ``<answer>``, in the training rows' layout."""
    if text.rstrip().endswith(ANSWER_OPEN):
        return ""
    if THINK_CLOSE in text:
        return " " + ANSWER_OPEN
    return "\n" + THINK_CLOSE + "\n\n" + ANSWER_OPEN


def thinking_text(text: str) -> tuple[str, bool]:
    """(text up to and including the first ``<answer>``, whether it contains one) of a thinking-phase sample."""
    i = text.find(ANSWER_OPEN)
    if i < 0:
        return text, False
    return text[: i + len(ANSWER_OPEN)], True


def choose_token(logprobs: dict[int, float], temperature: float, top_p: float, rng: random.Random) -> int:
    """Next answer token from the allowed tokens' log-probs: the best (lowest id on ties) at ``temperature`` <= 0,
    else a draw from softmax(logprob / T) renormalised over the allowed tokens, restricted to the smallest set of
    most likely tokens whose probability reaches ``top_p`` (the order vLLM applies: allowed-token mask,
    temperature, top-p)."""
    if not logprobs:
        raise ValueError("no allowed token to choose from")
    order = sorted(logprobs, key=lambda t: (-logprobs[t], t))
    if temperature <= 0:
        return order[0]
    scaled = [logprobs[t] / temperature for t in order]
    top = scaled[0]
    weights = [math.exp(s - top) for s in scaled]
    total = sum(weights)
    probs = [w / total for w in weights]
    kept, mass = 0, 0.0
    for p in probs:
        kept += 1
        mass += p
        if mass >= top_p - 1e-12:
            break
    r = rng.random() * sum(probs[:kept])
    acc = 0.0
    for t, p in zip(order[:kept], probs[:kept]):
        acc += p
        if r < acc:
            return t
    return order[kept - 1]


def constrained_answers(prefixes: Sequence[Sequence[int]], trie: TokenTrie, allowed_logprobs: AllowedLogprobs,
                        temperature: float, top_p: float, rng: random.Random
                        ) -> list[tuple[list[int], int, float]]:
    """Walk the trie from the root for every prefix: one batched ``allowed_logprobs`` call per depth, one
    :func:`choose_token` per running sequence. Returns (answer token ids, catalog ID index, summed log-prob)."""
    state = [(0, [], 0.0) for _ in prefixes]  # (node, tokens, logprob)
    done: dict[int, tuple[list[int], int, float]] = {}
    for _ in range(trie.max_depth):
        running = [i for i in range(len(prefixes)) if i not in done]
        if not running:
            break
        reqs = [(list(prefixes[i]) + state[i][1], sorted(trie.children[state[i][0]])) for i in running]
        answers = allowed_logprobs(reqs)
        for i, (_, allowed), lps in zip(running, reqs, answers):
            missing = set(allowed) - set(lps)
            if missing:
                raise RuntimeError(f"the engine returned no log-prob for {len(missing)} allowed answer tokens")
            tok = choose_token({t: lps[t] for t in allowed}, temperature, top_p, rng)
            node, toks, lp = state[i]
            child = trie.children[node][tok]
            state[i] = (child, toks + [tok], lp + lps[tok])
            if trie.leaf[child] >= 0:
                done[i] = (state[i][1], trie.leaf[child], state[i][2])
    if len(done) != len(prefixes):
        raise RuntimeError("a constrained answer did not reach a complete ID")
    return [done[i] for i in range(len(prefixes))]


def reason_decode(engine, tokenizer, trie: TokenTrie, prompts: Sequence[Sequence[int]], n: int, temperature: float,
                  top_p: float, think_budget: int, seed: int, *, ban_early_end: bool
                  ) -> list[list[ReasonSample]]:
    """``n`` reasoning samples per prompt: free thinking within ``think_budget`` tokens (that cannot end the turn
    before ``<answer>`` with ``ban_early_end``), then a constrained answer (module docstring)."""
    bias = early_end_bias(tokenizer) if ban_early_end else None
    thoughts = engine.sample(prompts, n, temperature, top_p, think_budget, seed, stop=(ANSWER_OPEN,),
                             logit_bias=bias)
    ends = end_tokens(tokenizer)
    flat: list[tuple[int, str, bool]] = []
    for u, texts in enumerate(thoughts):
        for text in texts:
            think, natural = thinking_text(text)
            if not natural:  # servers keep the text of the EOS token a sample ended with
                think = strip_end_tokens(think, ends)
            flat.append((u, think + ("" if natural else close_suffix(think)), natural))
    prefixes = [list(prompts[u]) + tokenizer(text, add_special_tokens=False)["input_ids"] for u, text, _ in flat]
    rng = random.Random(seed)
    answers = constrained_answers(prefixes, trie, engine.allowed_logprobs, temperature, top_p, rng)
    out: list[list[ReasonSample]] = [[] for _ in prompts]
    for (u, text, natural), (toks, leaf, lp) in zip(flat, answers):
        full = text + "".join(trie.token_str[t] for t in toks) + ANSWER_CLOSE
        out[u].append(ReasonSample(text=full, natural_close=natural, answer_index=leaf, answer_logprob=lp,
                                   generated_tokens=count_tokens(tokenizer, full)))
    return out


BAN = -100.0  # the OpenAI API's most negative logit bias: the token is (practically) never drawn


def early_end_bias(tokenizer) -> dict[int, float]:
    """Logit bias of the thinking phase with ``ban_early_end``: the end-of-sequence and padding tokens and
    ``</answer>`` (an answer cannot close before it opened) are banned."""
    ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
    close = tokenizer.convert_tokens_to_ids(ANSWER_CLOSE)
    if isinstance(close, int) and close != tokenizer.unk_token_id:
        ids.add(close)
    return {i: BAN for i in sorted(ids)}


def end_tokens(tokenizer) -> list[str]:
    """Texts of the tokenizer's end-of-sequence and padding tokens."""
    return [t for t in (tokenizer.eos_token, tokenizer.pad_token) if t]


def strip_end_tokens(text: str, end_tokens: Sequence[str]) -> str:
    """``text`` without trailing end-of-sequence / padding token texts."""
    stripped = True
    while stripped:
        stripped = False
        for tok in end_tokens:
            if text.endswith(tok):
                text, stripped = text[: -len(tok)], True
    return text


def count_tokens(tokenizer, text: str) -> int:
    """Generated-token count of a sample, the one rule for both variants: the tokens of its text (EOS excluded)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def unconstrained_decode(engine, tokenizer, prompts: Sequence[Sequence[int]], n: int, temperature: float,
                         top_p: float, max_new_tokens: int, seed: int, stop: Sequence[str]
                         ) -> list[list[ReasonSample]]:
    """The unconstrained variant: one free sampling pass stopped at ``stop`` (``</answer>``)."""
    texts = engine.sample(prompts, n, temperature, top_p, max_new_tokens, seed, stop=tuple(stop))
    ends = end_tokens(tokenizer)
    samples = []
    for user in texts:
        clean = [strip_end_tokens(t, ends) for t in user]
        samples.append([ReasonSample(text=t, natural_close=ANSWER_OPEN in t, answer_index=None, answer_logprob=None,
                                     generated_tokens=count_tokens(tokenizer, t)) for t in clean])
    return samples


def rank_answers(answers: Sequence[str | None], logprobs: Sequence[float | None]) -> list[str]:
    """Distinct answers of one user's samples, most frequent first; ties by the higher mean log-prob of the samples
    that gave the answer, then by first appearance. Unparsable answers (None) are skipped."""
    count: dict[str, int] = defaultdict(int)
    lp_sum: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    for i, (a, lp) in enumerate(zip(answers, logprobs)):
        if a is None:
            continue
        count[a] += 1
        lp_sum[a] += lp if lp is not None else 0.0
        first.setdefault(a, i)
    return sorted(count, key=lambda a: (-count[a], -lp_sum[a] / count[a], first[a]))
