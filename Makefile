# Hubkeeper: `make demo` runs a local JupyterHub with Hubkeeper; `make test` runs the suite
# (`make test-fast`: without the slow tiers).
# Installs are idempotent: stamp files make a second run a no-op until the lock files change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.hubkeeper-installed
NODE_STAMP := node_modules/.hubkeeper-installed
PG_URL := postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: venv install demo test test-fast lint format bench clean chromium postgres

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

$(NODE_STAMP): package.json $(wildcard package-lock.json)
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	touch $@

# Chromium drives the browser tests; installed from apt only when missing and we are root.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
		else echo "note: /usr/bin/chromium is missing; browser tests will be skipped"; fi; \
	fi

install: $(PY_STAMP) $(NODE_STAMP) chromium

demo: install
	$(BIN)/hubkeeper demo

# PostgreSQL on 127.0.0.1:5432, started if installed but down; the suite runs the database
# tests against it too when it answers (HUBKEEPER_TEST_POSTGRES_URL).
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null \
		&& [ -d /etc/postgresql ]; then \
		for version in $$(ls /etc/postgresql); do \
			pg_ctlcluster --skip-systemctl-redirect $$version main start 2>/dev/null || true; \
		done; \
		for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done; \
	fi

# The suite includes tests/web/test_schemathesis.py: a bounded schemathesis run of the whole API
# on SQLite and PostgreSQL (HUBKEEPER_TEST_FUZZ_EXAMPLES cases per operation, default 12, on
# PostgreSQL; half that on SQLite when PostgreSQL runs too).
# `make test` runs every tier and lists the 25 slowest tests; `make test-fast` skips the slow
# tiers (pyproject markers: own_hub, subprocess, perf, browser, own_db) for a quick check.
# PYTEST_ARGS is passed on: `make test-fast PYTEST_ARGS="tests/culler -x"`.
FAST_TIERS := not own_hub and not subprocess and not perf and not browser and not own_db

define run_pytest
	@if $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		echo "PostgreSQL answers on 127.0.0.1:5432: database tests run on SQLite and PostgreSQL"; \
		export HUBKEEPER_TEST_POSTGRES_URL=$(PG_URL); \
	else \
		echo "No PostgreSQL on 127.0.0.1:5432: database tests run on SQLite only"; \
	fi; \
	$(BIN)/pytest $(1) $(PYTEST_ARGS)
endef

# The suite runs on every core (pytest-xdist), one test module per worker at a time
# (`--dist loadscope`: a module's shared hub stays in one worker). `make test TEST_WORKERS=0`
# runs it in one process.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

test: install postgres
	$(call run_pytest,--durations=25 -n $(TEST_WORKERS) --dist loadscope)

test-fast: install postgres
	$(call run_pytest,--durations=10 -m "$(FAST_TIERS)")

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	mkdir -p .typecheck && ln -sfn ../app .typecheck/hubkeeper
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Writes docs/performance.md: the directory, the culler, usage and the backtest over a million
# sessions (on SQLite, and on PostgreSQL too when it answers: the bench makes a database of its own there).
bench: install postgres
	$(BIN)/python bench/run.py
	$(BIN)/python bench/run.py --culler
	$(BIN)/python bench/hub_load.py --servers 1000,5000 --write
	@if $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		$(BIN)/python bench/usage.py --write --postgres $(PG_URL); \
		$(BIN)/python bench/backtest.py --write --postgres $(PG_URL); \
	else \
		$(BIN)/python bench/usage.py --write; \
		$(BIN)/python bench/backtest.py --write; \
	fi

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-artifacts
	find . \( -path ./$(VENV) -o -path ./node_modules \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
