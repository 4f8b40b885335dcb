# The two commands of the README's quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= etc/syncd/syncd.toml

.PHONY: run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

## run the daemon on the embedded default: SQLite in ./var, inbox ./var/inbox, API on localhost
run: $(BIN)/.installed
	mkdir -p var/inbox/music
	$(BIN)/syncd run --config $(CONFIG)

## install what the tests need, lint, type-check, and run the whole suite
test: $(BIN)/.installed
	scripts/test-services
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

## ruff, and mypy over syncd/ and plugins/ (files and settings in pyproject.toml)
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

## CSV → SQLite ingest benchmark against the raw sqlite3 floor and sqlite-utils
bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var build *.egg-info
