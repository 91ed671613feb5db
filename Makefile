# Norrvakt — two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= var

.PHONY: run test lint typecheck unit system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Front-end packages (htmx, Chart.js) come from npm, never copied into the repository.
ASSETS := node_modules/.installed-stamp
$(ASSETS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(ASSETS)

## make run: install everything and start Norrvakt with demo traffic (data under ./var)
run: $(STAMP) $(ASSETS)
	-$(BIN)/norrvakt --data-dir $(DATA_DIR) rules update --if-reachable
	$(BIN)/norrvakt --data-dir $(DATA_DIR) serve --demo

## make test: install what the tests need (PyPI + Debian packages), then ruff, mypy, pytest
test: $(STAMP) $(ASSETS) system-deps lint typecheck unit

system-deps:
	bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check norrvakt tests bench
	$(BIN)/ruff format --check norrvakt tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Two processes (pytest-xdist), a test file's tests in one of them: most end-to-end tests wait
# on their servers and senders, so two files at a time use both cores (7 instead of 13 minutes).
# PYTEST_ARGS adds options, e.g. make unit PYTEST_ARGS=--skip-cluster (leaves out tests/cluster).
# The tests start hundreds of Python processes (servers, parse workers, CLI calls); with
# PYTHONDONTWRITEBYTECODE set (as on these machines) each would compile Norrvakt's sources
# again, so the tests keep bytecode under .tools/pycache (outside the source tree).
PYTEST_ARGS ?=
unit: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(CURDIR)/.tools/pycache \
		$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
