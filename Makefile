# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
# A CPU build of torch lies in /opt/wheels on our machines; use it when present so that
# pip never pulls a multi-GB CUDA build from the index.
WHEELS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
DEMO_DIR ?= demo-project
# Tests run on two worker processes (pytest-xdist); a folder that builds a session-wide shop stays
# on one worker (tests/conftest.py). `make test PYTEST_WORKERS=0` runs them in this process.
PYTEST_WORKERS ?= 2
PYTEST = $(PY) -m pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

.PHONY: venv install demo test test-all bench clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(WHEELS) "torch==2.13.0"
	$(PIP) install --quiet $(WHEELS) -e ".[test]"
	touch $@

venv install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/churnguard demo --project $(DEMO_DIR)

test: $(VENV)/.installed
	$(VENV)/bin/lint-imports
	$(PYTEST)

test-all: $(VENV)/.installed
	$(VENV)/bin/lint-imports
	$(PYTEST) -m ""

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
