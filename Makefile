# Two commands do all set-up (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-versions test-fallbacks lint typecheck pytest bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "forklift needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/forklift demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# The whole suite on every other CPython >= 3.10 on this machine, each in its own .venv-3.N
# (.ci/versions says how they are found); CI runs it after `make test`.
test-versions:
	.ci/versions

# The suite with every Linux feature forklift can do without switched off (FORKLIFT_WITHOUT=all;
# docs/architecture.md, "Platforms"): the fallbacks run, and the tests of what a feature buys
# (marked needs(...)) skip. CI runs it after `make test`.
test-fallbacks: $(VENV)/.installed-dev
	FORKLIFT_WITHOUT=all $(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-3.* .ci/logs build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
