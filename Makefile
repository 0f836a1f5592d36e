# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# FVD's Kinetics-400 I3D weights (models/i3d.py), converted once by `genie fetch-i3d`.
I3D   := $(or $(GENIE_I3D_WEIGHTS),.genie/cache/i3d_kinetics400.pt)
# The browser test of `genie play` drives Debian's headless Chromium (Playwright never downloads one).
CHROMIUM := /usr/bin/chromium
# The team-MLflow test (tests/platform/test_team_mlflow.py) runs Debian's PostgreSQL server.
POSTGRES := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
PYTHON ?= python3

.PHONY: install postgresql recorder demo test test-cluster test-fast lint format bench gpu-check up down status lock clean

install: $(STAMP) $(I3D) $(CHROMIUM)

# torch first, from the CPU wheel: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# Order-only on the venv: the weights do not change when the dependencies do.
$(I3D): | $(STAMP)
	$(PY) -m jobs.tools.fetch_i3d --out $@

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q --no-install-recommends chromium; \
	else \
		echo "note: no $(CHROMIUM); install Debian's chromium to run the browser test of genie play"; \
	fi

postgresql:
	@if [ -n "$(POSTGRES)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
	else \
		echo "note: no PostgreSQL server; install Debian's postgresql to run the team-MLflow test"; \
	fi

# GAME=coinrun records CoinRun (procgen) instead of rendering the built-in platformer.
GAME ?= platformer

demo: install $(if $(filter coinrun,$(GAME)),recorder)
	$(PY) -m jobs.demo --game $(GAME)

# The CoinRun recorder's own environment (procgen2 needs numpy < 2): see jobs/record.py.
recorder: install
	$(PY) -c "from jobs.record import DEFAULT_VENV, ensure_recorder; ensure_recorder(DEFAULT_VENV)"

test: install recorder lint
	$(VENV)/bin/pytest

# Two Ray nodes on this machine and MLflow on a real PostgreSQL; a few minutes. CI runs it
# after `make test`.
test-cluster: install postgresql
	$(VENV)/bin/pytest -m cluster

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

# On one GPU, under 8 minutes: per stage tokens/s, MFU and peak memory, Ray Train vs plain loop,
# play frames/s, the paper dynamics' per-layer memory under FSDP2 (jobs/benchmarks/gpu_check.py).
# Never part of `make test`; CI runs its CPU dry mode (tests/jobs/benchmarks/test_gpu_check.py).
gpu-check: install
	$(PY) -m jobs.benchmarks.gpu_check --out .genie/gpu-check.json

# NODES=2: a head plus a second Ray node on this machine (platform/README.md, "Ports").
up: install
	$(PY) platform/local/localctl.py up --nodes $(or $(NODES),1)

down:
	@test -x $(PY) && $(PY) platform/local/localctl.py down || true

status: install
	$(PY) platform/local/localctl.py status

# Re-pin every transitive dependency after changing a pin in pyproject.toml.
lock: install
	$(PY) -m pip freeze --exclude-editable | grep -v '^genie-platform' > constraints.txt

clean: down
	rm -rf $(VENV) .genie
