# Two entry points: `make serve` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL_DIR ?= models
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint demo-model bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.runtime

demo-model: $(VENV)/.runtime
	$(BIN)/python -m service.demo_model $(MODEL_DIR)

## Serve the bundled demo model on http://$(HOST):$(PORT)
serve: demo-model
	MODEL_DIR=$(MODEL_DIR) $(BIN)/python -m service --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/lint-delivery.sh

## Lint, then run the whole test suite
test: lint
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/pytest

## Throughput/latency vs a naive FastAPI server and MLServer (needs wrk: apt-get install wrk)
bench: $(VENV)/.dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-kserve $(MODEL_DIR) .pytest_cache .ruff_cache
