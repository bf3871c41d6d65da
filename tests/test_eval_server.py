"""The OpenAI-compatible engine against a real local HTTP server.

The server (FastAPI + uvicorn on 127.0.0.1) runs the tiny HF model behind /v1/completions and honours what vLLM and
SGLang honour: token-id prompts, `n`, `temperature`, `top_p`, `max_tokens`, `stop`, `logprobs` (vLLM raw mode: top-k
full-vocabulary log-probs plus the chosen token), `allowed_token_ids` (vLLM) and `custom_logit_processor` +
`custom_params` (SGLang, deserialised with dill exactly as SGLang does)."""

import json
import socket
import threading
import time

import pytest
import torch

from gream_pipeline.eval.beam import trie_beam_search
from gream_pipeline.eval.engines import OpenAIEngine, sglang_allowed_tokens_processor
from gream_pipeline.eval.prompts import default_direct_prompt, render
from gream_pipeline.eval.trie import IDCatalog, TokenTrie, token_ids_for
from tests.fixtures.configs import engine_config
from tests.fixtures.tiny import build_tiny_model, fake_index


def _make_app(model, tok, requests_log):
    import dill
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        requests_log.append(body)
        ids = body["prompt"]
        assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
        allowed = body.get("allowed_token_ids")
        if body.get("custom_logit_processor"):
            proc = dill.loads(bytes.fromhex(json.loads(body["custom_logit_processor"])["callable"]))()
        else:
            proc = None
        as_ids = body.get("return_tokens_as_token_ids", False)
        name = (lambda t: f"token_id:{t}") if as_ids else (lambda t: tok.convert_ids_to_tokens(t))
        with torch.no_grad():
            if body.get("max_tokens") == 1:
                logits = model(input_ids=torch.tensor([ids])).logits[:, -1].float()
                raw = torch.log_softmax(logits, -1)[0]
                masked = logits.clone()
                if allowed is not None:
                    m = torch.full_like(masked, float("-inf"))
                    m[0, allowed] = masked[0, allowed]
                    masked = m
                if proc is not None:
                    masked = proc(masked, [body.get("custom_params")])
                chosen = int(masked[0].argmax())
                k = int(body.get("logprobs") or 0)
                top = raw.topk(k) if k else None
                tops = {name(int(t)): float(v) for v, t in zip(*top)} if top is not None else {}
                tops.setdefault(name(chosen), float(raw[chosen]))
                choice = {"index": 0, "text": tok.decode([chosen]), "finish_reason": "length",
                          "logprobs": {"tokens": [name(chosen)], "token_logprobs": [float(raw[chosen])],
                                       "top_logprobs": [tops], "text_offset": [0]}}
                return _resp([choice])
            n = int(body.get("n", 1))
            torch.manual_seed(int(body.get("seed") or 0))
            out = model.generate(input_ids=torch.tensor([ids]), do_sample=True, temperature=body["temperature"],
                                 top_p=body["top_p"], top_k=0, num_return_sequences=n,
                                 max_new_tokens=body["max_tokens"], pad_token_id=tok.pad_token_id)
            texts = [tok.decode(o[len(ids):], skip_special_tokens=not body.get("skip_special_tokens") is False)
                     for o in out]
            return _resp([{"index": i, "text": t, "finish_reason": "length", "logprobs": None}
                          for i, t in enumerate(texts)])

    def _resp(choices):
        return {"id": "cmpl-1", "object": "text_completion", "created": int(time.time()), "model": "tiny",
                "choices": choices, "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import uvicorn
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = build_tiny_model(tmp_path_factory.mktemp("srv") / "model", seed=3)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    cat = IDCatalog.from_index(fake_index(40, codes=(3, 3, 3, 3), seed=2))
    trie = TokenTrie.build(cat, token_ids_for(tok, cat))
    log: list[dict] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_make_app(model, tok, log), host="127.0.0.1", port=port,
                                           log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    prompts = [render(tok, default_direct_prompt([cat.ids[i] for i in h])) for h in ([0, 1, 2], [3, 4])]
    yield {"url": f"http://127.0.0.1:{port}/v1", "model": model, "tok": tok, "cat": cat, "trie": trie,
           "log": log, "prompts": prompts}
    server.should_exit = True
    th.join(timeout=10)


def _engine(served, **kw):
    cfg = engine_config(kind="openai", base_url=served["url"], concurrency=4, **kw)
    return OpenAIEngine(served["trie"], served["tok"], cfg)


def test_server_beam_vllm_flavor_matches_hf(served):
    trie, log = served["trie"], served["log"]
    eng = _engine(served, flavor="vllm", max_logprobs=len(served["tok"]))  # all logprobs visible: exact search
    log.clear()
    got = eng.beam(served["prompts"], num_beams=10, top_k=5)
    ref = trie_beam_search(served["model"], served["prompts"], trie, num_beams=10, top_k=5,
                           pad_id=served["tok"].pad_token_id)
    for g, r in zip(got, ref):
        assert [i for i, _ in g] == [i for i, _ in r]
        assert [s for _, s in g] == pytest.approx([s for _, s in r], abs=1e-4)
    assert log and all(b["max_tokens"] == 1 and b["allowed_token_ids"] for b in log)
    first = [b for b in log if b["prompt"] == served["prompts"][0]]
    assert sorted(first[0]["allowed_token_ids"]) == sorted(trie.children[0])  # root children of the trie
    eng.close()


def test_server_beam_small_logprobs_and_sglang_flavor(served):
    cat, log = served["cat"], served["log"]
    for flavor in ("vllm", "sglang"):
        eng = _engine(served, flavor=flavor, max_logprobs=5)
        log.clear()
        got = eng.beam(served["prompts"], num_beams=6, top_k=6)
        for hyps in got:
            ids = [i for i, _ in hyps]
            assert ids and len(ids) == len(set(ids)) and all(0 <= i < len(cat.ids) for i in ids)
        if flavor == "sglang":
            assert all("custom_logit_processor" in b and "allowed_token_ids" in b["custom_params"] for b in log)
            assert all("allowed_token_ids" not in b for b in log)
        eng.close()


def test_server_sampling_parameters(served):
    eng = _engine(served, flavor="vllm")
    served["log"].clear()
    outs = eng.sample(served["prompts"], n=3, temperature=0.7, top_p=0.9, max_new_tokens=6, seed=5,
                      stop=["</answer>"])
    assert [len(o) for o in outs] == [3, 3] and all(isinstance(t, str) for o in outs for t in o)
    body = served["log"][0]
    assert (body["n"], body["temperature"], body["top_p"], body["max_tokens"]) == (3, 0.7, 0.9, 6)
    assert body["stop"] == ["</answer>"] and body["include_stop_str_in_output"] is True
    assert body["skip_special_tokens"] is False
    eng.close()


def test_sglang_processor_is_self_contained(tmp_path):
    """Loaded the way SGLang loads it, in a fresh interpreter; it must not import gream and must mask per row."""
    import subprocess
    import sys

    payload = sglang_allowed_tokens_processor()
    assert b"gream" not in bytes.fromhex(json.loads(payload)["callable"])
    (tmp_path / "p.json").write_text(payload)
    code = (
        "import json, sys, dill, torch\n"
        f"data = json.loads(open({str(tmp_path / 'p.json')!r}).read())\n"
        "proc = dill.loads(bytes.fromhex(data['callable']))()\n"
        "x = proc(torch.zeros(2, 6), [{'allowed_token_ids': [1, 4]}, None])\n"
        "assert torch.isinf(x[0]).tolist() == [True, False, True, True, False, True]\n"
        "assert not torch.isinf(x[1]).any()\n"
        "assert not any(m.startswith('gream') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=120)
