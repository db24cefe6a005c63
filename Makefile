# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   - start the bundled emulator and run the example DAGs through real Airflow
#   make test   - lint, type-check and run the whole test suite
# Each creates the virtualenv on first use (pip installs uv into it; uv installs the rest,
# pinned by the constraints file in requirements/).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= requirements/constraints-airflow-3.txt
EXTRAS ?= test,common-messaging,openlineage
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
export PYTHONDONTWRITEBYTECODE :=

.PHONY: demo test lint typecheck unit bench install lock clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"

$(VENV)/.installed: $(BIN)/uv pyproject.toml $(CONSTRAINTS)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

demo: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/python benchmarks/run_all.py

# Re-pin the constraints after changing dependencies in pyproject.toml.
lock: $(BIN)/uv
	$(BIN)/uv pip compile --quiet --python-version 3.11 --all-extras pyproject.toml -o $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
