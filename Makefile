# opsflow: `make demo` runs the main jobs on embedded defaults, `make test` runs the tests.
# Both create or refresh .venv first, and skip the install when nothing changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export OPSFLOW_HOME ?= $(CURDIR)/.opsflow

.PHONY: install demo test lint lock benchmark deployments stop clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/opsflow demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/opsflow deployments --check
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Re-pin after changing dependencies in pyproject.toml: the tests then run on exactly these.
lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^opsflow' > constraints.txt

benchmark: install
	$(BIN)/python benchmarks/focus_ingest.py
	$(BIN)/python benchmarks/templates.py
	$(BIN)/python benchmarks/detect_incidents.py
	$(BIN)/python benchmarks/bridge_latency.py
	$(BIN)/python benchmarks/run_latency.py
	$(BIN)/python benchmarks/concurrent_runs.py

deployments: install
	$(BIN)/opsflow deployments

stop: install
	$(BIN)/opsflow stop

clean:
	-$(BIN)/opsflow stop
	rm -rf $(VENV) .opsflow
