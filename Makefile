# Shortcuts over the project's .venv tools. Set up once: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'
# (bash scripts/test.sh, what CI runs, does that too and checks the services and system packages first).
# Pass pytest options with ARGS, e.g. make test ARGS="-x -q tests/test_ingest.py".

VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: all lint format typecheck test

all: lint typecheck test

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# the paths are pyproject's [tool.mypy] files: the whole project, tests and migrations included
typecheck:
	$(BIN)/mypy

test:
	$(BIN)/python -m pytest $(ARGS)
