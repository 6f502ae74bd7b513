# The two commands of the README, each doing its own set-up in a project virtual environment:
#   make run    install what is missing, then `ablate run` on its defaults (writes results/default/report.md)
#   make test   install what is missing, then the whole test suite (slow tests included, as CI runs it)
# A second call reuses the environment; it is rebuilt when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
# Pinned so that the set-up never pulls a multi-GB CUDA build by accident; override for another build.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast install clean

install: $(STAMP)

# The example plugin package is installed too, so the tests see a real plugin found through its entry point.
PLUGIN := examples/plugin-sigmoid-gate

$(STAMP): pyproject.toml $(PLUGIN)/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet -e $(PLUGIN)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ablate run

# The tests run in one process per core (pytest-xdist, at most 4): most slow tests wait on subprocesses, and
# each test process uses one torch thread (tests/conftest.py), so the cores are shared, not oversubscribed.
PYTEST := $(BIN)/python -m pytest -q --numprocesses=auto --maxprocesses=4

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

clean:
	rm -rf $(VENV) *.egg-info
