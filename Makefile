# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# FVD's Kinetics-400 I3D weights (models/i3d.py), converted once by `genie fetch-i3d`.
I3D   := $(or $(GENIE_I3D_WEIGHTS),.genie/cache/i3d_kinetics400.pt)
PYTHON ?= python3

.PHONY: install demo test test-fast lint format bench up down status lock clean

install: $(STAMP) $(I3D)

# torch first, from the CPU wheel: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# Order-only on the venv: the weights do not change when the dependencies do.
$(I3D): | $(STAMP)
	$(PY) -m jobs.fetch_i3d --out $@

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
