# The two commands of the README, and the steps they are made of.
#   make up     set up the control plane's environment and run `llm-infra up`
#   make test   set up everything, build the test binaries once, lint, run every test
# Each step prints a "==>" line, so CI logs show where the time goes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
UV_VERSION := 0.13.9
# requirements.lock pins every version (generated: make lock); extras pick the subset.
INSTALL = $(UV) pip install --quiet --python $(BIN)/python -c requirements.lock

.DEFAULT_GOAL := help
.PHONY: help up test lint test-binaries bench lock generate clean

help:
	@echo "make up      run the standalone control plane (llm-infra up)"
	@echo "make test    lint and run the whole test suite (builds test binaries on first run)"

$(UV):
	@echo "==> creating $(VENV) with uv $(UV_VERSION)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.server: $(UV) pyproject.toml requirements.lock
	@echo "==> installing llm-infra[server]"
	$(INSTALL) -e '.[server]'
	@touch $@

$(VENV)/.dev: $(UV) pyproject.toml requirements.lock
	@echo "==> installing llm-infra[server,operator,dev]"
	$(INSTALL) -e '.[server,operator,dev]'
	@touch $@

up: $(VENV)/.server
	$(BIN)/llm-infra up $(ARGS)

test-binaries:
	@echo "==> test binaries (etcd, kube-apiserver, kubectl, helm; redis-server)"
	hack/test-binaries.sh
	hack/ensure-redis.sh

lint: $(VENV)/.dev
	@echo "==> ruff"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@echo "==> mypy"
	$(BIN)/mypy
	@echo "==> import-linter"
	$(BIN)/lint-imports

test: $(VENV)/.dev test-binaries lint
	@echo "==> pytest"
	$(BIN)/pytest $(PYTEST_ARGS)

$(VENV)/.bench: $(VENV)/.dev
	@echo "==> installing llm-infra[bench]"
	$(INSTALL) -e '.[server,operator,dev,bench]'
	@touch $@

bench: $(VENV)/.bench
	$(BIN)/python bench/vector_bench.py $(ARGS)

lock: $(UV)
	$(UV) pip compile pyproject.toml --all-extras --python-version 3.11 --no-header --quiet -o requirements.lock

generate: $(VENV)/.dev
	$(BIN)/python hack/generate.py

clean:
	rm -rf $(VENV) bin .mypy_cache .ruff_cache .pytest_cache
