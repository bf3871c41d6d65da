"""The OpenAI-compatible engine against stand-ins that log-prob like the real servers (fixtures/engine_servers.py).

vLLM reports raw full-vocabulary log-probs for its top `logprobs` (capped at --max-logprobs, default 20) plus the
sampled token; SGLang reports log-probs taken after the custom logit processor. The client must give the HF fast
path's exact scores through both; the tests also show that the stand-ins catch the naive clients (top-k only for
vLLM, a masking processor for SGLang), so a client regression fails here."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gream_pipeline.eval.beam import stepwise_trie_beam, trie_beam_search
from gream_pipeline.eval.engines import (EngineSetupError, OpenAIEngine, complete_topk,
                                         sglang_allowed_tokens_processor)
from gream_pipeline.eval.prompts import default_direct_prompt, render
from gream_pipeline.eval.trie import IDCatalog, TokenTrie, token_ids_for
from tests.fixtures.configs import engine_config
from tests.fixtures.engine_servers import EngineServer
from tests.fixtures.tiny import build_tiny_model, fake_index


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = build_tiny_model(tmp_path_factory.mktemp("srv") / "model", seed=3)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    tries = {}
    for name, n, codes, seed in (("narrow", 40, (3, 3, 3, 3), 2), ("wide", 150, (16, 8, 4, 3), 5)):
        cat = IDCatalog.from_index(fake_index(n, codes=codes, seed=seed))
        tries[name] = (cat, TokenTrie.build(cat, token_ids_for(tok, cat)))
    cat = tries["narrow"][0]
    prompts = [render(tok, default_direct_prompt([cat.ids[i] for i in h])) for h in ([0, 1, 2], [3, 4], [7])]
    servers = {"vllm": EngineServer(model, tok, "vllm"), "sglang": EngineServer(model, tok, "sglang")}
    for s in servers.values():
        s.start()
    yield {"model": model, "tok": tok, "tries": tries, "prompts": prompts, "servers": servers}
    for s in servers.values():
        s.stop()


def _engine(world, flavor, trie="narrow", **kw):
    cfg = engine_config(kind="openai", base_url=world["servers"][flavor].base_url, flavor=flavor, concurrency=4, **kw)
    return OpenAIEngine(world["tries"][trie][1], world["tok"], cfg)


def _hf(world, trie, num_beams, top_k):
    return trie_beam_search(world["model"], world["prompts"], world["tries"][trie][1], num_beams=num_beams,
                            top_k=top_k, pad_id=world["tok"].pad_token_id)


def _same(got, ref, tol=1e-4):
    return all([i for i, _ in g] == [i for i, _ in r] and
               all(abs(a - b) <= tol for (_, a), (_, b) in zip(g, r)) for g, r in zip(got, ref))


def _max_err(got, ref):
    """Largest |score difference| over IDs both lists hold, and how many users' top lists differ."""
    diff, changed = 0.0, 0
    for g, r in zip(got, ref):
        rs = dict(r)
        diff = max([diff] + [abs(s - rs[i]) for i, s in g if i in rs])
        changed += [i for i, _ in g] != [i for i, _ in r]
    return diff, changed


@pytest.mark.parametrize("trie, num_beams, top_k", [("narrow", 10, 5), ("wide", 1, 1), ("wide", 12, 8)])
def test_vllm_flavor_top20_is_exact(world, trie, num_beams, top_k):
    """Default server (--max-logprobs 20) and client (max_logprobs 20): scores equal the HF fast path's."""
    eng = _engine(world, "vllm", trie, max_logprobs=20)
    log = world["servers"]["vllm"].requests
    log.clear()
    got = eng.beam(world["prompts"], num_beams=num_beams, top_k=top_k)
    assert _same(got, _hf(world, trie, num_beams, top_k))
    steps = [b for b in log if "allowed_token_ids" in b]
    assert steps and all(b["logprobs"] == 20 and b["return_tokens_as_token_ids"] for b in steps)
    assert sorted(steps[0]["allowed_token_ids"]) == sorted(world["tries"][trie][1].children[0])
    stats = eng.stats.as_dict()
    assert all("prompt_logprobs" in b and b["prompt_logprobs"] == 0 for b in log if "allowed_token_ids" not in b)
    if num_beams == 1:  # the sampled token is the best child and always reported: the rest cannot matter
        assert stats["pruned_exactly"] > 0 and stats["rescored"] == 0
    else:  # random weights: children fall outside the top 20 and are scored exactly by a second request
        assert stats["rescored"] > 0
    eng.close()


def test_vllm_topk_only_client_fails(world):
    """Today's scoring (sum whatever the top-k reports, prune the rest) against real vLLM semantics: wrong ranks."""
    eng = _engine(world, "vllm", "wide", max_logprobs=5)
    naive = stepwise_trie_beam(world["prompts"], eng.trie, lambda reqs: [eng._one_step(r) for r in reqs],
                               num_beams=12, top_k=8)
    ref = _hf(world, "wide", 12, 8)
    assert not _same(naive, ref)
    assert _same(eng.beam(world["prompts"], num_beams=12, top_k=8), ref)  # the fixed client, same settings
    eng.close()


def test_vllm_logprobs_above_server_cap_is_a_clear_error(world):
    eng = _engine(world, "vllm", max_logprobs=50)  # the server keeps vLLM's default --max-logprobs 20
    with pytest.raises(EngineSetupError, match="max-logprobs"):
        eng.beam(world["prompts"][:1], num_beams=2, top_k=2)
    eng.close()


@pytest.mark.parametrize("trie, num_beams, top_k", [("narrow", 10, 5), ("wide", 12, 8)])
def test_sglang_flavor_is_exact(world, trie, num_beams, top_k):
    eng = _engine(world, "sglang", trie)
    log = world["servers"]["sglang"].requests
    log.clear()
    got = eng.beam(world["prompts"], num_beams=num_beams, top_k=top_k)
    assert _same(got, _hf(world, trie, num_beams, top_k))
    steps = [b for b in log if "custom_params" in b][1:]  # [0]: the start-up check
    assert steps and all(b["logprobs"] == len(b["custom_params"]["allowed_token_ids"]) + 1 for b in steps)
    assert all("allowed_token_ids" not in b for b in log)
    eng.close()


def test_sglang_masking_processor_fails(world):
    """A processor that only masks (what gream sent before): SGLang renormalises over the allowed children."""
    eng = _engine(world, "sglang", "wide")
    base = eng.adapter.allowed_tokens
    eng.adapter.allowed_tokens = lambda ids: {**base(ids), "custom_params": {"allowed_token_ids": list(ids),
                                                                             "sink": False}}
    got = eng.beam(world["prompts"], num_beams=12, top_k=8)
    ref = _hf(world, "wide", 12, 8)
    assert not _same(got, ref)
    err, _ = _max_err(got, ref)
    assert err > 0.5 and all(g[0][1] > r[0][1] for g, r in zip(got, ref))  # renormalised: higher, other order
    eng.close()


def test_sglang_without_the_server_flag_is_a_clear_error(world):
    with EngineServer(world["model"], world["tok"], "sglang", enable_custom_logit_processor=False) as srv:
        cfg = engine_config(kind="openai", base_url=srv.base_url, flavor="sglang")
        with pytest.raises(EngineSetupError, match="--enable-custom-logit-processor"):
            OpenAIEngine(world["tries"]["narrow"][1], world["tok"], cfg)


def test_sglang_server_that_ignores_the_processor_is_detected(world):
    """A server that drops custom_logit_processor (e.g. another engine behind flavor=sglang) reports raw top-k."""
    cfg = engine_config(kind="openai", base_url=world["servers"]["vllm"].base_url, flavor="sglang")
    with pytest.raises(EngineSetupError, match="did not apply"):
        OpenAIEngine(world["tries"]["narrow"][1], world["tok"], cfg)


def test_complete_topk_rule():
    assert complete_topk({1: -1.0, 2: -2.0}, [1, 2], num_beams=5) == []            # all visible
    assert complete_topk({1: -1.0, 2: -2.0}, [1, 2, 3, 4], num_beams=2) == []      # >= num_beams visible
    assert complete_topk({1: -1.0}, [1, 2, 3], num_beams=2) == [2, 3]             # must rescore


def test_server_sampling_parameters(world):
    eng = _engine(world, "vllm")
    log = world["servers"]["vllm"].requests
    log.clear()
    outs = eng.sample(world["prompts"][:2], n=3, temperature=0.7, top_p=0.9, max_new_tokens=6, seed=5,
                      stop=["</answer>"])
    assert [len(o) for o in outs] == [3, 3] and all(isinstance(t, str) for o in outs for t in o)
    body = log[0]
    assert (body["n"], body["temperature"], body["top_p"], body["max_tokens"]) == (3, 0.7, 0.9, 6)
    assert body["stop"] == ["</answer>"] and body["include_stop_str_in_output"] is True
    assert body["skip_special_tokens"] is False
    eng.close()


def test_sglang_processor_semantics_in_a_fresh_interpreter(tmp_path):
    """Loaded the way SGLang loads it (dill.loads(...)() in a process without gream): per row, the log_softmax of
    the processed logits equals the full-vocabulary log-probs on the allowed tokens; other rows are untouched."""
    payload = sglang_allowed_tokens_processor()
    assert b"gream_pipeline" not in bytes.fromhex(json.loads(payload)["callable"])
    (tmp_path / "p.json").write_text(payload)
    code = (
        "import json, sys, dill, torch\n"
        f"data = json.loads(open({str(tmp_path / 'p.json')!r}).read())\n"
        "proc = dill.loads(bytes.fromhex(data['callable']))()\n"
        "torch.manual_seed(0); x = torch.randn(3, 40) * 4; raw = torch.log_softmax(x, -1)\n"
        "y = proc(x.clone(), [{'allowed_token_ids': [1, 4, 9]}, None, {'allowed_token_ids': [0, 1, 2]}])\n"
        "lp = torch.log_softmax(y, -1)\n"
        "assert torch.isfinite(y[0]).sum() == 4 and torch.isfinite(y[0, [1, 4, 9]]).all() and torch.isfinite(y[0, 0])\n"
        "assert torch.isfinite(y[2, 3])\n"  # sink: the first token that is not allowed
        "assert (lp[0, [1, 4, 9]] - raw[0, [1, 4, 9]]).abs().max() < 1e-5\n"
        "assert (lp[2, [0, 1, 2]] - raw[2, [0, 1, 2]]).abs().max() < 1e-5\n"
        "assert torch.equal(y[1], x[1])\n"
        "assert not any(m.startswith('gream') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=120)


def _other_pythons() -> list[str]:
    """Python 3 interpreters of another minor version: on PATH, or installed by pyenv."""
    cands = [shutil.which(f"python3.{m}") for m in range(8, 15)]
    cands += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.*/bin/python3"))
    found, seen = [], {sys.version_info[:2]}
    for exe in filter(None, cands):
        r = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
        ver = tuple(map(int, r.stdout.split())) if r.returncode == 0 else None
        if ver and ver not in seen:
            seen.add(ver)
            found.append(exe)
    return found


def test_sglang_processor_loads_on_other_python_versions(tmp_path):
    """No code object travels: the pickle calls builtins.eval on the source, so a server on another Python 3 minor
    version (where a dill-by-value class fails to load) builds the same class. Plain pickle suffices there."""
    payload = json.loads(sglang_allowed_tokens_processor())
    assert payload["python"] == "%d.%d.%d" % sys.version_info[:3]
    import pickletools

    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(bytes.fromhex(payload["callable"]))]
    globals_ = [a for name, a in ops if name in ("GLOBAL", "STACK_GLOBAL", "SHORT_BINUNICODE")
                and a in ("builtins", "eval", "dill._dill", "types")]
    assert globals_ == ["builtins", "eval"]
    others = _other_pythons()
    if not others:
        pytest.skip("no other Python 3 interpreter on PATH")
    (tmp_path / "p.json").write_text(json.dumps(payload))
    for exe in others:
        out = subprocess.run([exe, "-c", "import json, pickle; d = json.load(open('p.json')); "
                              "c = pickle.loads(bytes.fromhex(d['callable'])); import sys; "
                              "print(sys.version_info[:2], c.__name__, callable(c()))"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "GreamAllowedTokens True" in out.stdout, (exe, out.stderr[-500:])


def test_docs_state_the_engine_semantics():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "GPU.md").read_text()
    for needle in ("--max-logprobs", "--enable-custom-logit-processor", "prompt_logprobs", "sink"):
        assert needle in doc


@pytest.mark.parametrize("by_token_ids", [True, False])
def test_in_process_vllm_engine_is_exact(world, tmp_path, monkeypatch, by_token_ids):
    """VLLMEngine against a stand-in `vllm` module with vLLM's semantics (top-k raw log-probs, logprob_token_ids
    <= 128, prompt_logprobs for older versions): exact scores, like the HF fast path."""
    from gream_pipeline.eval.engines import VLLMEngine
    from tests.fixtures.engine_servers import fake_vllm_module

    mod = fake_vllm_module()
    if not by_token_ids:
        mod.SamplingParams.__struct_fields__ = tuple(f for f in mod.SamplingParams.__struct_fields__
                                                     if f != "logprob_token_ids")
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.inputs", mod.inputs)
    model_dir = tmp_path / "m"
    world["model"].save_pretrained(model_dir)
    world["tok"].save_pretrained(model_dir)
    cfg = engine_config(kind="vllm", max_logprobs=20, dtype="float32")
    eng = VLLMEngine(model_dir, world["tries"]["wide"][1], world["tok"], cfg)
    got = eng.beam(world["prompts"], num_beams=12, top_k=8)
    assert _same(got, _hf(world, "wide", 12, 8))
    assert eng.stats.rescored > 0
    used = [p for call in mod.LLM.calls for _, p in call]
    assert any(getattr(p, "logprob_token_ids", None) for p in used) == by_token_ids
    assert any(p.prompt_logprobs == 0 for p in used) == (not by_token_ids)
    assert all(len(p.logprob_token_ids) <= 128 for p in used if getattr(p, "logprob_token_ids", None))
    eng.close()
