# Comuna: every command a developer or CI needs. Only Python 3.11+ must exist beforehand.
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
PY := $(VENV)/bin/python
STATE_DIR ?= .devstack

.PHONY: help install proto lint test test-fast run demo bench clean

help:
	@echo "make install  create .venv from uv.lock (uv itself lives in $(TOOLS))"
	@echo "make run      start PostgreSQL, NATS and the four services (embedded, .devstack/)"
	@echo "make demo     drive one whole consultation cycle against 'make run'"
	@echo "make test     lint and run every test (unit, integration, end-to-end)"
	@echo "make bench    every benchmark (register, census, audit log, voter roll, ballots against 'make run'); one JSON object"
	@echo "make proto    regenerate Python code from proto/"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# uv keeps .venv exactly in step with uv.lock (all groups: dev tools and deploy checks).
install: $(UV)
	UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --all-groups --python $(PYTHON)

proto: install
	$(PY) tools/gen_proto.py
	$(PY) tools/gen_event_docs.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install lint
	$(PY) -m pytest -q

run: install
	$(VENV)/bin/comuna-dev --state-dir $(STATE_DIR) run

demo: install
	$(VENV)/bin/comuna-dev --state-dir $(STATE_DIR) demo

bench: install
	$(VENV)/bin/comuna-dev --state-dir $(STATE_DIR) bench all

# comuna-dev clean also stops a killed run's leftovers and removes PostgreSQL data it relocated.
clean:
	if [ -x $(VENV)/bin/comuna-dev ]; then $(VENV)/bin/comuna-dev --state-dir $(STATE_DIR) clean; fi
	rm -rf $(VENV) $(TOOLS) $(STATE_DIR)
