"""Ray scale-out: a local Ray with 2 CPU workers (an ActorPool) gives exactly the single-process numbers; an existing
cluster is joined through $RAY_ADDRESS (no num_cpus passed), and workers own the GPUs Ray assigns them."""

import contextlib
import json
import logging
import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gream_pipeline.eval import evaluate
from gream_pipeline.eval.runner import worker_device, worker_resources
from tests.fixtures.configs import eval_config
from tests.fixtures.tiny import build_tiny_model, fake_examples, fake_index

BASE = dict(dataset="Scientific", batch_size=2, num_beams=8, n_samples=4, ks=[1, 2, 4], top_k=4, think_budget=6,
            progress=False, plots=False, engine={"num_threads": 1, "dtype": "float32"})
strip = lambda m: {k: v for k, v in m.items() if k != "meta"}  # noqa: E731


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    d = build_tiny_model(root / "model", seed=7)
    index = fake_index(30, codes=(3, 3, 2, 3), seed=8)
    examples = fake_examples(index, 7, history=3, seed=9)
    single = evaluate(d, index, examples, root / "single", eval_config(**BASE))
    (root / "case.json").write_text(json.dumps({"index": index, "examples": examples}))
    return {"root": root, "model": d, "index": index, "examples": examples, "single": single}


@pytest.mark.timeout(480)
def test_ray_sharded_eval_equals_single_process(case, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    root = case["root"]
    ray_cfg = eval_config(**BASE, ray={"enabled": True, "num_workers": 2, "num_cpus_per_worker": 1})
    sharded = evaluate(case["model"], case["index"], case["examples"], root / "ray", ray_cfg)
    assert strip(sharded) == strip(case["single"])
    assert sharded["meta"]["ray_workers"] == 2 and case["single"]["meta"]["ray_workers"] == 0
    preds = [(root / x / "predictions.jsonl").read_text().splitlines() for x in ("single", "ray")]
    assert [json.loads(x) for x in preds[0]] == [json.loads(x) for x in preds[1]]  # same IDs, scores, samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ray on loopback only (as on macOS): node IPs are 127.0.0.1, no traffic to the host's other addresses. Ray 2.60's
# `ray start` turns token authentication on, and a driver given an explicit address does not pick the token up by
# itself (docs/GPU.md): the test cluster runs without it.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def ray_head():
    """A Ray head started like on a cluster node (`ray start --head`), 2 CPUs and 2 (declared) GPUs, stopped by
    signalling the process group this fixture created."""
    pytest.importorskip("ray")
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="gream-ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    exe = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [str(exe), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **LOOPBACK})
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            probe = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={address!r}); "
                                    "print(int(ray.cluster_resources().get('GPU', 0)))"],
                                   capture_output=True, text=True, timeout=60, env={**os.environ, **LOOPBACK})
        except subprocess.TimeoutExpired as e:
            probe = subprocess.CompletedProcess(e.cmd, 1, "", str(e))
        if probe.returncode == 0 and probe.stdout.strip().endswith("2"):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"ray head did not come up: {probe.stderr[-800:]}")
        time.sleep(1)
    yield address
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:  # gcs_server & co. share the group and may outlive `ray start`
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.timeout(600)
def test_joins_an_existing_cluster_and_gives_each_worker_its_gpu(case, ray_head):
    """A driver process with $RAY_ADDRESS set (as on a cluster node) joins without num_cpus; 2 workers × 1 GPU each
    get distinct Ray GPU ids and CUDA_VISIBLE_DEVICES = that id, so a CUDA engine in each uses its own GPU (cuda:0 of
    its visible set), never the same physical one. The numbers equal the single-process run."""
    root = case["root"]
    driver = (
        "import json, sys; from pathlib import Path\n"
        "from gream_pipeline.eval import evaluate\n"
        "from tests.fixtures.configs import eval_config\n"
        f"root = Path({str(root)!r}); c = json.loads((root / 'case.json').read_text())\n"
        f"cfg = eval_config(**{BASE!r}, ray={{'enabled': True, 'num_workers': 2, 'num_cpus_per_worker': 1, "
        "'num_gpus_per_worker': 1})\n"
        "evaluate(root / 'model', c['index'], c['examples'], root / 'cluster', cfg)\n")
    proc = subprocess.run([sys.executable, "-c", driver], cwd=Path(__file__).resolve().parents[1], timeout=540,
                          capture_output=True, text=True, env={**os.environ, **LOOPBACK, "RAY_ADDRESS": ray_head})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((root / "cluster" / "metrics.json").read_text())
    assert strip(got) == strip(case["single"])
    places = got["meta"]["ray_placement"]
    assert got["meta"]["ray_workers"] == 2 and len(places) == 2
    assert sorted(g for p in places for g in p["gpu_ids"]) == ["0", "1"]
    for p in places:
        assert p["cuda_visible_devices"] == p["gpu_ids"][0] and p["device"] == "cpu"  # engine.device=cpu kept
        assert worker_device("cuda", p["gpu_ids"], p["cuda_visible_devices"]) == "cuda:0"


def test_worker_device():
    assert worker_device("cuda", [], None) == "cuda" and worker_device("cpu", [], "") == "cpu"
    assert worker_device("cuda", ["3"], "3") == "cuda:0"          # Ray narrowed CUDA_VISIBLE_DEVICES to the GPU
    assert worker_device("cuda:0", ["5"], "4,5") == "cuda:1"      # several visible: the assigned one's index
    assert worker_device("cuda", [2], None) == "cuda:2"           # no variable: the id is the index


def test_worker_resources(caplog):
    cuda = eval_config(engine={"kind": "hf", "device": "cuda"}, ray={"num_workers": 4, "num_gpus_per_worker": 0.0})
    assert worker_resources(cuda, 8.0) == (4, 1.0)                # a CUDA engine reserves its GPU
    with caplog.at_level(logging.WARNING):
        assert worker_resources(cuda, 2.0) == (2, 1.0)            # only 2 fit: 2 workers, not 2 waiting forever
    assert "do not fit" in caplog.text
    with pytest.raises(RuntimeError, match="has 0 GPUs"):
        worker_resources(cuda, 0.0)
    half = eval_config(ray={"num_workers": 4, "num_gpus_per_worker": 0.5})
    assert worker_resources(half, 2.0) == (4, 0.5)
    server = eval_config(engine={"kind": "openai", "device": "cuda"}, ray={"num_workers": 3})
    assert worker_resources(server, 0.0) == (3, 0.0)              # the model runs in the server
    cpu = eval_config(ray={"num_workers": 2})
    assert worker_resources(cpu, 8.0) == (2, 0.0)
