"""Async chat-completions client on the official ``openai`` package, for any OpenAI-compatible ``base_url``.

* bounded concurrency: a semaphore caps in-flight HTTP requests at ``cfg.concurrency``;
* retries with exponential backoff + jitter on timeouts, connection errors, 408/409/429/5xx and malformed bodies
  (the SDK's own retries are off: ``max_retries=0``); a ``Retry-After``/``retry-after-ms`` header is honoured
  (capped at ``backoff_max``); other 4xx errors fail at once;
* a request/token budget checked before every request (``BudgetExceeded``);
* running counters (requests, retries by cause, tokens, cost) in ``Stats``.

The API key is read from the env var named by ``cfg.api_key_env`` and handed to the SDK only; it is never logged,
printed or stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field

from .config import SynthConfig

DUMMY_KEY = "EMPTY"  # local vLLM/SGLang servers accept any key


class TransportError(RuntimeError):
    """A request that failed after all retries (or with a non-retryable status); ``cause`` is a short code."""

    def __init__(self, cause: str, detail: str = ""):
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause


class BudgetExceeded(RuntimeError):
    """The request or token budget is used up; remaining work is left for a later run."""


@dataclass
class Stats:
    requests: int = 0
    responses: int = 0
    retries: Counter = field(default_factory=Counter)  # cause → retried requests
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_usage: int = 0  # responses without a usage block (tokens estimated as chars / 4)
    price_prompt: float = 0.0
    price_completion: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * self.price_prompt + self.completion_tokens * self.price_completion) / 1e6


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


def retry_after(headers) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (numeric form), else None."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _classify(exc: Exception) -> tuple[str, bool, float | None]:
    """Exception → (cause, retryable, server-requested delay)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout", True, None
    if isinstance(exc, openai.APIConnectionError):
        return "connection", True, None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        delay = retry_after(getattr(exc.response, "headers", None))
        if status == 429:
            return "429", True, delay
        if status >= 500:
            return "5xx", True, delay
        if status in (408, 409):
            return f"http_{status}", True, delay
        return f"http_{status}", False, None
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, TypeError,
                        AttributeError)):
        return "malformed", True, None
    raise exc


class ChatClient:
    """See module docstring. Create inside a running event loop; ``await aclose()`` when done."""

    def __init__(self, cfg: SynthConfig, stats: Stats, rng: random.Random | None = None):
        from openai import AsyncOpenAI

        self.cfg = cfg
        self.stats = stats
        self.sem = asyncio.Semaphore(cfg.concurrency)
        self.rng = rng or random.Random()
        api_key = os.environ.get(cfg.api_key_env) or DUMMY_KEY
        self._client = AsyncOpenAI(base_url=cfg.base_url, api_key=api_key, timeout=cfg.timeout, max_retries=0)
        stats.price_prompt, stats.price_completion = cfg.price_prompt_per_mtok, cfg.price_completion_per_mtok

    async def aclose(self) -> None:
        await self._client.close()

    def _check_budget(self) -> None:
        cfg, stats = self.cfg, self.stats
        if cfg.max_requests is not None and stats.requests >= cfg.max_requests:
            raise BudgetExceeded(f"request budget {cfg.max_requests} used")
        if cfg.max_tokens is not None and stats.tokens >= cfg.max_tokens:
            raise BudgetExceeded(f"token budget {cfg.max_tokens} used")

    def _backoff(self, attempt: int, requested: float | None) -> float:
        if requested is not None:
            return min(requested, self.cfg.backoff_max)
        base = min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** attempt)
        return base * (0.5 + 0.5 * self.rng.random())

    async def _request(self, messages: list[dict]) -> Completion:
        cfg = self.cfg
        kwargs: dict = {"model": cfg.model, "messages": messages}
        if cfg.temperature is not None:
            kwargs["temperature"] = cfg.temperature
        if cfg.max_output_tokens is not None:
            kwargs["max_tokens"] = cfg.max_output_tokens
        if cfg.extra_body:
            kwargs["extra_body"] = dict(cfg.extra_body)
        resp = await self._client.chat.completions.create(**kwargs)
        content = resp.choices[0].message.content  # AttributeError/TypeError/IndexError → malformed
        if not isinstance(content, str):
            raise ValueError("response without text content")
        usage = getattr(resp, "usage", None)
        if usage is None or usage.prompt_tokens is None:
            self.stats.estimated_usage += 1
            prompt = sum(len(m["content"]) for m in messages) // 4
            return Completion(content, prompt, len(content) // 4)
        return Completion(content, int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))

    async def chat(self, messages: list[dict]) -> Completion:
        """One completion, with retries (module docstring). Raises ``TransportError`` or ``BudgetExceeded``."""
        for attempt in range(self.cfg.max_retries + 1):
            async with self.sem:
                self._check_budget()  # inside the semaphore: at most `concurrency` requests can overshoot it
                self.stats.requests += 1
                try:
                    out = await self._request(messages)
                except IndexError as exc:
                    cause, retryable, delay = "malformed", True, None
                    detail = str(exc)
                except Exception as exc:  # classified below; unknown exceptions propagate
                    cause, retryable, delay = _classify(exc)
                    detail = type(exc).__name__
                else:
                    self.stats.responses += 1
                    self.stats.prompt_tokens += out.prompt_tokens
                    self.stats.completion_tokens += out.completion_tokens
                    return out
            if not retryable or attempt == self.cfg.max_retries:
                raise TransportError(cause, detail)
            self.stats.retries[cause] += 1
            await asyncio.sleep(self._backoff(attempt, delay))
        raise AssertionError("unreachable")
