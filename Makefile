# `make test` and `make app` set everything up on a fresh machine (a virtual environment with
# the pinned CPU build of torch) and then run; the set-up step re-runs only when the
# requirements change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint app bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[app,test]"
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# The main job.  Until the web app exists: a short Yin-Yang training run with a progress bar
# that prints the test accuracy (the run folder goes to runs/).
app: setup
	$(VENV)/bin/workbench train --dataset yinyang --epochs 5 --seed 0 --out runs/app-$$(date +%Y%m%d-%H%M%S)

bench: setup
	$(PY) -m pip install --quiet -c constraints.txt -r requirements-bench.txt
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
