# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: install demo test test-fast lint format bench up down status lock clean

install: $(STAMP)

# torch first, from the CPU wheel: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(PY) -m jobs.demo

test: install lint
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m jobs.bench

up: install
	$(PY) platform/local/localctl.py up

down:
	@test -x $(PY) && $(PY) platform/local/localctl.py down || true

status: install
	$(PY) platform/local/localctl.py status

# Re-pin every transitive dependency after changing a pin in pyproject.toml.
lock: install
	$(PY) -m pip freeze --exclude-editable | grep -v '^genie-platform' > constraints.txt

clean: down
	rm -rf $(VENV) .genie
