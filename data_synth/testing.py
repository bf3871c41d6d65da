"""Test helpers: a fault-injecting OpenAI-compatible server and a small deterministic toy dataset.

``FaultServer`` is a real HTTP server (FastAPI + uvicorn, in a background thread) on 127.0.0.1 that speaks
``POST /v1/chat/completions``. Each request's *plan* is chosen from a hash of its messages (never the arrival
order), and the n-th arrival of the same messages gets the plan's n-th action (the last action repeats):

    ok            ["ok"]
    delay         ["delay", "ok"]          sleeps past the client timeout, then answers
    429           ["429", "ok"]            429 with a Retry-After header
    500           ["500", "500", "ok"]
    malformed     ["malformed", "ok"]      200 with a truncated JSON body
    invalid_once  ["invalid", "ok"]        a completion that fails validation
    poison        ["invalid"]              always invalid → the item ends up rejected
    mixed         ["429", "malformed", "invalid", "ok"]

Completion texts depend only on the messages, so every run — including one killed and resumed — ends with the same
final texts. Valid reasoning texts follow the Appendix C format with the target as answer; invalid ones break it
in one of several ways (also chosen by hash). Run standalone with ``python -m data_synth.testing --port 8000``.
"""

import asyncio
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter

from .prompts import (ANSWER_CLOSE, ANSWER_OPEN, REASON_SYSTEM_V1, REWRITE_HEADING, STEP_HEADINGS, THINK_CLOSE,
                      THINK_OPEN)
from .validate import ids_in

PLANS: dict[str, list[str]] = {
    "ok": ["ok"],
    "delay": ["delay", "ok"],
    "429": ["429", "ok"],
    "500": ["500", "500", "ok"],
    "malformed": ["malformed", "ok"],
    "invalid_once": ["invalid", "ok"],
    "poison": ["invalid"],
    "mixed": ["429", "malformed", "invalid", "ok"],
}
DEFAULT_WEIGHTS = {"ok": 40, "delay": 8, "429": 10, "500": 10, "malformed": 10, "invalid_once": 10, "poison": 5,
                   "mixed": 7}
INVENTED_ID = "<a_9999><b_9999><c_9999><d_9999>"
_HISTORY = re.compile(r"The user has interacted with items (.*?) in chronological order\.")
_TARGET = re.compile(r"The item the user actually interacted with next is (.*?)\.\n")


def content_hash(messages: list[dict]) -> int:
    blob = json.dumps([[m.get("role"), m.get("content")] for m in messages], sort_keys=True)
    return int(hashlib.sha256(blob.encode()).hexdigest()[:16], 16)


def reasoning_text(history: list[str], target: str, h: int, valid: bool = True) -> str:
    """A server-side reasoning completion: valid (Appendix C format, answer = target) or broken by hash."""
    keep = [iid for i, iid in enumerate(history[:-1]) if (h >> i) & 1] + history[-1:]
    step1 = f"The user interacted with {len(history)} items, most recently {history[-1]} (variant {h % 997})."
    step2 = f"- Prefers items similar to {history[-1]}.\n- Consistent interests across {len(history)} purchases."
    step3 = "The user most likely wants a follow-up purchase that complements the recent items."
    rewrite, answer = ", ".join(keep), target
    variant = None if valid else h % 4
    if variant == 0:
        answer = history[0]  # answer_mismatch (a real ID, not the target)
    elif variant == 1:
        step1 += f" A related catalogue entry is {INVENTED_ID}."  # unknown_id
    elif variant == 2 and len(history) >= 2:
        rewrite = ", ".join(reversed(history))  # rewrite_not_subsequence
    elif variant == 2:
        answer = history[0]
    heading2 = STEP_HEADINGS[1] if variant != 3 else "Step 2: Preferences"  # missing_section
    return (f"{THINK_OPEN}\n{STEP_HEADINGS[0]}:\n{step1}\n\n{heading2}:\n{step2}\n\n{STEP_HEADINGS[2]}:\n{step3}\n"
            f"{THINK_CLOSE}\n\n{REWRITE_HEADING} {rewrite}.\n\nBased on the above analysis, the recommended product "
            f"is {ANSWER_OPEN}{answer}{ANSWER_CLOSE}")


def enrich_text(messages: list[dict], h: int, valid: bool = True) -> str:
    if not valid:
        return "Too short."
    first = messages[-1]["content"].split("\n", 1)[0].removeprefix("Title:").strip()
    return f"{first}. A well-made product described by the fake server (variant {h % 997}) with useful features."


class FaultServer:
    """Scripted OpenAI-compatible server in a background thread (module docstring)."""

    def __init__(self, weights: dict[str, int] | None = None, delay: float = 1.0, retry_after: float = 1.0,
                 latency: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = set(self.weights) - set(PLANS)
        if unknown:
            raise ValueError(f"unknown plans {sorted(unknown)}")
        self.delay, self.retry_after, self.latency = delay, retry_after, latency
        self.host, self.port = host, port
        self.seen: Counter = Counter()  # content hash → arrivals
        self.actions: Counter = Counter()  # action → count
        self.plans: Counter = Counter()  # plan of first arrivals
        self.authorizations: Counter = Counter()  # Authorization headers seen (tests check the key is sent)
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    def plan_of(self, h: int) -> str:
        total = sum(self.weights.values())
        r = h % total
        for name, w in self.weights.items():
            if r < w:
                return name
            r -= w
        raise AssertionError("unreachable")

    def _next_action(self, h: int) -> tuple[str, str]:
        with self._lock:
            n = self.seen[h]
            self.seen[h] += 1
            plan = self.plan_of(h)
            if n == 0:
                self.plans[plan] += 1
            steps = PLANS[plan]
            action = steps[min(n, len(steps) - 1)]
            self.actions[action] += 1
        return plan, action

    def completion(self, body: dict, h: int, valid: bool) -> dict:
        messages = body["messages"]
        if messages[0]["content"] == REASON_SYSTEM_V1:
            user = messages[-1]["content"]
            history = ids_in(_HISTORY.search(user).group(1))
            target = ids_in(_TARGET.search(user).group(1))[0]
            text = reasoning_text(history, target, h, valid)
        else:
            text = enrich_text(messages, h, valid)
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4
        return {"id": f"chatcmpl-{h:x}", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4,
                          "total_tokens": prompt_tokens + len(text) // 4}}

    def app(self):
        # (no ``from __future__ import annotations`` in this module: FastAPI must see the real ``Request`` class)
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response

        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            self.authorizations[request.headers.get("authorization", "")] += 1
            body = await request.json()
            h = content_hash(body["messages"])
            _, action = self._next_action(h)
            if self.latency:
                await asyncio.sleep(self.latency)
            if action == "429":
                return JSONResponse({"error": {"message": "rate limited (injected)", "type": "rate_limit"}},
                                    status_code=429, headers={"Retry-After": f"{self.retry_after:g}"})
            if action == "500":
                return JSONResponse({"error": {"message": "internal error (injected)"}}, status_code=500)
            if action == "malformed":
                return Response(b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"index": 0, "mes',
                                media_type="application/json")
            if action == "delay":
                await asyncio.sleep(self.delay)
            return JSONResponse(self.completion(body, h, valid=action != "invalid"))

        return app

    def start(self) -> str:
        """Start serving; return the ``base_url`` (``http://127.0.0.1:<port>/v1``)."""
        import uvicorn

        config = uvicorn.Config(self.app(), host=self.host, port=self.port, log_level="error", lifespan="off",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fault server did not start")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> "FaultServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def toy_dataset(n_users: int = 30, n_items: int = 60, seed: int = 0, max_history: int = 20):
    """Deterministic ``(items, train_examples, index)`` in the pipeline formats (docs/CONVENTIONS.md).

    Items carry titles/brands/categories from a few category trees; IDs have 4 tokens; sequences have 5–12 items;
    training examples follow the leave-one-out convention (targets s[1..n-3]).
    """
    rng = random.Random(seed)
    trees = [("Lab", ["Pipettes", "Beakers", "Gloves"]), ("Tools", ["Drills", "Bits", "Clamps"]),
             ("Electrical", ["Capacitors", "Relays"])]
    brands = ["Acme", "Stanley", "Fisher", "Bosch", ""]
    items, index = {}, {}
    for i in range(n_items):
        parent, leafs = trees[i % len(trees)]
        leaf = leafs[(i // len(trees)) % len(leafs)]
        brand = brands[i % len(brands)]
        items[str(i)] = {"title": f"{brand or 'Generic'} {leaf[:-1]} model {i}", "brand": brand,
                         "description": f"A {leaf.lower()} product number {i} for {parent.lower()} work." * (i % 3),
                         "categories": f"Industrial & Scientific,{parent},{leaf}"}
        index[str(i)] = [f"<a_{i % 7}>", f"<b_{i % 11}>", f"<c_{(i * 5) % 13}>", f"<d_{i}>"]
    train = []
    for u in range(n_users):
        seq = rng.sample(range(n_items), rng.randint(5, min(12, n_items)))
        for t in range(1, len(seq) - 2):
            train.append({"user": str(u), "history": seq[max(0, t - max_history):t], "target": seq[t]})
    return items, train, index


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Serve the fault-injecting OpenAI-compatible test server.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--weights", type=json.loads, default=None, help='JSON, e.g. {"ok": 1}')
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    server = FaultServer(args.weights, delay=args.delay, port=args.port)
    print(server.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
