# Everything the project needs is installed from here into .venv at the repo root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The real-Asterisk suite (tests/asterisk) runs against this build prefix.
ASTERISK_PREFIX ?= /opt/asterisk

.PHONY: test test-asterisk test-faults demo bench bench-asterisk lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Files are spread over TEST_WORKERS processes (each with its own throwaway Postgres): most
# tests wait on real timers, so two halve the time even on two cores.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Calls through a real Asterisk (see tests/asterisk/conftest.py); skipped, saying why, when
# $(ASTERISK_PREFIX) has no build.
test-asterisk: $(STAMP)
	ASTERISK_PREFIX="$(ASTERISK_PREFIX)" $(BIN)/python -m pytest -q -rx -m asterisk tests/asterisk

# The active/standby pair under five faults, a call in every phase, RUNS runs each (default
# 5; about 20 minutes): prints the table (tests/faults/report.py) and keeps the figures in
# build/fault-matrix/.
test-faults: $(STAMP)
	mkdir -p build/fault-matrix
	FAULT_RUNS="$(or $(RUNS),5)" $(BIN)/python -m pytest -q -m faults --basetemp=build/fault-matrix/tmp tests/faults
	$(BIN)/python -m tests.faults.report

# SERVE=1: afterwards keep the daemon and its web console running until Ctrl-C.
demo: $(STAMP)
	$(BIN)/python -m ari_controller.demo $(if $(SERVE),--serve,)

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The same job on a real Asterisk, with app_followme as the baseline (bench/README.md).
bench-asterisk: $(STAMP)
	ASTERISK_PREFIX="$(ASTERISK_PREFIX)" $(BIN)/python bench/real_asterisk.py

lint: $(STAMP)
	$(BIN)/ruff check ari_controller tests bench
	$(BIN)/ruff format --check ari_controller tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .grimp_cache .import_linter_cache
