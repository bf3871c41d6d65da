"""Async chat-completions client on the official ``openai`` package, for any OpenAI-compatible ``base_url``.

* bounded concurrency: a semaphore caps concurrent completions (their HTTP attempts and the SDK's waits between
  them) at ``cfg.concurrency``;
* transport retries are the SDK's own (``max_retries``): timeouts, connection errors, 408/409/429/5xx, exponential
  backoff with jitter, ``Retry-After``/``retry-after-ms`` honoured; other 4xx errors fail at once;
* malformed 200 bodies (the SDK does not retry them) are retried here, at once; transport and malformed retries of
  one completion share ``cfg.max_retries``;
* a request/token budget checked before every HTTP attempt, SDK retries included (``BudgetExceeded``);
* running counters (HTTP attempts, retries by cause, tokens, cost) in ``Stats``.

Per-attempt accounting runs in the event hooks of the SDK's HTTP client (``http_client=``): the request hook checks
the budget, counts the attempt and, for a retry (``x-stainless-retry-count`` > 0), counts the previous attempt's
cause; the response hook records the status and reads the body (tagging a timeout or connection error while
reading). Attempts that end without a response never reach a response hook, so the client's transport tags those.
The current completion's attempts are tracked in a context variable (each completion runs in its own task).

The API key is read from the env var named by ``cfg.api_key_env`` and handed to the SDK only; it is never logged,
printed or stored.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
from collections import Counter
from dataclasses import dataclass, field

from .config import SynthConfig

DUMMY_KEY = "EMPTY"  # local vLLM/SGLang servers accept any key
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # set by the SDK on every attempt: 0, then 1, 2, … on its retries


class TransportError(RuntimeError):
    """A request that failed after all retries (or with a non-retryable status); ``cause`` is a short code."""

    def __init__(self, cause: str, detail: str = ""):
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause


class BudgetExceeded(RuntimeError):
    """The request or token budget is used up; remaining work is left for a later run."""


@dataclass
class Stats:
    requests: int = 0  # HTTP attempts, retries included
    responses: int = 0
    retries: Counter = field(default_factory=Counter)  # cause → retried attempts
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


@dataclass
class _Attempts:
    """HTTP attempts of one SDK call: how many were sent, and why the last one failed (None: no failure seen)."""

    sent: int = 0
    cause: str | None = None


_CALL: contextvars.ContextVar[_Attempts | None] = contextvars.ContextVar("data_synth_call", default=None)


def status_cause(status: int) -> str:
    """Cause code of an HTTP error status: ``429``, ``5xx`` or ``http_<status>``."""
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    return f"http_{status}"


def _classify(exc: Exception) -> str:
    """Final exception of a completion → cause code; exceptions that are not about the endpoint propagate."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        return status_cause(exc.status_code)
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, TypeError,
                        AttributeError, IndexError)):
        return "malformed"
    raise exc


def _failure_cause(exc: Exception) -> str:
    """Cause code of an attempt that raised instead of delivering a response: ``timeout`` or ``connection``."""
    import httpx2

    return "timeout" if isinstance(exc, httpx2.TimeoutException) else "connection"


def _transport():
    import httpx2

    class TaggingTransport(httpx2.AsyncHTTPTransport):
        """Records why an attempt produced no response (event hooks only see responses), then re-raises."""

        async def handle_async_request(self, request):
            try:
                return await super().handle_async_request(request)
            except Exception as exc:
                attempts = _CALL.get()
                if attempts is not None:
                    attempts.cause = _failure_cause(exc)
                raise

    return TaggingTransport()


class ChatClient:
    """See module docstring. Create inside a running event loop; ``await aclose()`` when done."""

    def __init__(self, cfg: SynthConfig, stats: Stats):
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        self.cfg = cfg
        self.stats = stats
        self.sem = asyncio.Semaphore(cfg.concurrency)
        api_key = os.environ.get(cfg.api_key_env) or DUMMY_KEY
        http_client = DefaultAsyncHttpxClient(transport=_transport(), event_hooks={
            "request": [self._on_request], "response": [self._on_response]})
        self._client = AsyncOpenAI(base_url=cfg.base_url, api_key=api_key, timeout=cfg.timeout,
                                   max_retries=cfg.max_retries, http_client=http_client)
        stats.price_prompt, stats.price_completion = cfg.price_prompt_per_mtok, cfg.price_completion_per_mtok

    async def aclose(self) -> None:
        await self._client.close()

    def _check_budget(self) -> None:
        cfg, stats = self.cfg, self.stats
        if cfg.max_requests is not None and stats.requests >= cfg.max_requests:
            raise BudgetExceeded(f"request budget {cfg.max_requests} used")
        if cfg.max_tokens is not None and stats.tokens >= cfg.max_tokens:
            raise BudgetExceeded(f"token budget {cfg.max_tokens} used")

    async def _on_request(self, request) -> None:
        attempts = _CALL.get()
        if attempts is None:
            return
        if int(request.headers.get(RETRY_COUNT_HEADER, "0")) > 0 and attempts.cause is not None:
            self.stats.retries[attempts.cause] += 1  # the SDK is retrying the previous attempt
        attempts.cause = None
        self._check_budget()  # raised out of the SDK unchanged: the completion is left for a later run
        self.stats.requests += 1
        attempts.sent += 1

    async def _on_response(self, response) -> None:
        attempts = _CALL.get()
        if attempts is None:
            return
        if response.status_code >= 400:
            attempts.cause = status_cause(response.status_code)
        try:  # read here (the SDK reads every non-streamed body next) so a failure while reading is tagged too
            await response.aread()
        except Exception as exc:
            attempts.cause = _failure_cause(exc)
            raise

    async def _request(self, messages: list[dict], max_retries: int) -> Completion:
        cfg = self.cfg
        kwargs: dict = {"model": cfg.model, "messages": messages}
        if cfg.temperature is not None:
            kwargs["temperature"] = cfg.temperature
        if cfg.max_output_tokens is not None:
            kwargs["max_tokens"] = cfg.max_output_tokens
        if cfg.extra_body:
            kwargs["extra_body"] = dict(cfg.extra_body)
        client = self._client if max_retries == cfg.max_retries else self._client.with_options(max_retries=max_retries)
        resp = await client.chat.completions.create(**kwargs)
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
        retries_left = self.cfg.max_retries
        while True:
            attempts = _Attempts()
            token = _CALL.set(attempts)
            try:
                async with self.sem:
                    out = await self._request(messages, retries_left)
            except BudgetExceeded:
                raise
            except Exception as exc:  # classified below; unknown exceptions propagate
                cause = _classify(exc)
                retries_left -= max(0, attempts.sent - 1)  # the SDK's retries within this call
                if cause != "malformed" or retries_left <= 0:
                    raise TransportError(cause, type(exc).__name__) from None
                retries_left -= 1
                self.stats.retries[cause] += 1
                continue
            finally:
                _CALL.reset(token)
            self.stats.responses += 1
            self.stats.prompt_tokens += out.prompt_tokens
            self.stats.completion_tokens += out.completion_tokens
            return out
