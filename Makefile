# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint fmt clean lock

# constraints.txt pins every installed version (regenerate with `make lock`), so a new
# upstream release cannot change what `make test` installs and tests.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "steadypay needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps barman  # decision 0009
	@touch $(STAMP)

## run: install into .venv and start steadypay on its embedded PostgreSQL
run: $(STAMP)
	$(BIN)/steadypay up

## test: install into .venv and run the whole suite (lint, types, layers, unit, integration, e2e)
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .steadypay .pytest_cache .mypy_cache .ruff_cache

## lock: re-resolve the dependencies to their newest allowed versions and pin them
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	.lock-venv/bin/python -m pip install --quiet --no-deps barman
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^steadypay' > constraints.txt
	rm -rf .lock-venv
