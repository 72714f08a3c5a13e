# `make test` and `make app` set everything up on a fresh machine (a virtual environment with
# the pinned CPU build of torch) and then run; the set-up step re-runs only when the
# requirements change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast fuzz lint app bench labs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[app,cluster,test]"
	# Compile the Numba kernels into their on-disk cache once (~1.5 min), so the first run,
	# the app's first Start and the tests do not wait for the compiler.
	$(PY) tools/warm_kernels.py
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# A deeper search for bad input than `make test`'s: Hypothesis with random seeds and twenty
# times the examples (tests/test_fuzz.py), then the robustness table (300 command lines, 1,000
# spec mutations, NIR files, each in its own process with a memory limit and a timeout).
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/test_fuzz.py
	$(PY) benchmarks/robustness.py

# The main job: serve the web app on http://localhost:5006/ (local compute, no external
# services; PORT=... to change it).
PORT ?= 5006
app: setup
	$(VENV)/bin/workbench app --port $(PORT)

bench: setup
	$(PY) -m pip install --quiet -c constraints.txt -r requirements-bench.txt
	$(PY) benchmarks/train_step.py

# Student (placeholders that raise) and teacher (solutions) versions of the lab notebooks.
labs: setup
	$(VENV)/bin/workbench labs notebooks build/labs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
