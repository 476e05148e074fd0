# remediate: two commands matter. `make demo` and `make test`; both set themselves up from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install system-deps lint typecheck pytest bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: an open range would pull a multi-GB CUDA build. The ray extra: the Ray tests run in CI.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/remediate demo

lint: $(STAMP)
	$(BIN)/ruff check bot remediation incidents_db playbooks sim tests benchmarks
	$(BIN)/ruff format --check bot remediation incidents_db playbooks sim tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers by default (most tests wait on servers and subprocesses); PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

# Alertmanager and Chromium for the bot's integration tests (installs only what is missing; needs root).
system-deps:
	@bash deploy/ci/install-system-deps.sh

test: system-deps lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
