# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   - start the bundled emulator and run the example DAGs through real Airflow
#   make test   - lint, type-check, and run the whole test suite on Airflow 3 (latest) and 2.11 (oldest)
# and, with a Cloudflare account:
#   make contract - the contract suite against the account and the emulator, side by side (needs
#                   CFQUEUES_CONTRACT_TOKEN and CFQUEUES_CONTRACT_ACCOUNT_ID; docs/emulator.md)
#   make contract-cleanup - list the queues interrupted contract runs left in that account (CONFIRM=yes deletes)
# Each virtualenv is created on first use (pip installs uv into it; uv installs the rest, pinned by the
# constraints files in requirements/).

PYTHON ?= python3
VENV ?= .venv
VENV2 ?= .venv-airflow2
BIN := $(VENV)/bin
BIN2 := $(VENV2)/bin
CONSTRAINTS ?= requirements/constraints-airflow-3.txt
CONSTRAINTS2 ?= requirements/constraints-airflow-2.txt
EXTRAS ?= test,common-messaging,openlineage,docs
EXTRAS2 ?= test
PYTEST_ARGS ?=
# make test runs each suite on every core (pytest-xdist; a module stays on one worker: tests/conftest.py)
PYTEST_WORKERS ?= auto
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
export PYTHONDONTWRITEBYTECODE :=

.PHONY: demo test test-airflow3 test-airflow2 contract contract-cleanup lint typecheck bench install install-airflow2 lock clean dist docs

%/bin/uv:
	$(PYTHON) -m venv $*
	$*/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"

$(VENV)/.installed: $(BIN)/uv pyproject.toml $(CONSTRAINTS)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

$(VENV2)/.installed: $(BIN2)/uv pyproject.toml $(CONSTRAINTS2)
	$(BIN2)/uv pip install --quiet --python $(BIN2)/python -c $(CONSTRAINTS2) -e ".[$(EXTRAS2)]"
	touch $@

install: $(VENV)/.installed

install-airflow2: $(VENV2)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test-airflow3: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-airflow2: install-airflow2
	$(BIN2)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck test-airflow3 test-airflow2

contract: install
	$(BIN)/pytest tests/contract --contract-target=live $(PYTEST_ARGS)

# list the queues earlier contract runs recorded creating and left in the account; CONFIRM=yes deletes them
contract-cleanup: install
	$(BIN)/python -m tests.contract.cleanup $(if $(filter yes,$(CONFIRM)),--yes,)

demo: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c $(CONSTRAINTS) -e ".[$(EXTRAS),bench]"
	$(BIN)/python benchmarks/run_all.py

# Re-pin both constraints files after changing dependencies in pyproject.toml.
lock: $(BIN)/uv
	$(BIN)/uv pip compile --quiet --python-version 3.11 --all-extras pyproject.toml -o $(CONSTRAINTS)
	echo "apache-airflow==2.11.*" > $(VENV)/airflow2-override.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra test pyproject.toml \
		--override $(VENV)/airflow2-override.txt -o $(CONSTRAINTS2)

# The documentation site in build/site, warnings (broken links and anchors included) as errors.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# The sdist and wheel in dist/, checked (contents, entry points, metadata, a rebuild from the sdist).
dist: install
	rm -rf dist
	$(BIN)/uv build --quiet --out-dir dist
	$(BIN)/python scripts/check_dist.py dist

clean:
	rm -rf $(VENV) $(VENV2) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info .airflow-demo
