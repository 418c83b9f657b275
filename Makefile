# Gatehouse: `make run` to try it, `make test` before you push, `make bench` to measure.
#
# Everything runs from ./.venv, created on first use with python3.11 (or python3 when
# there is no python3.11; Gatehouse needs 3.11 or newer). The install is redone only when
# pyproject.toml changed since the last one.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra arguments, e.g. `make test PYTEST_ARGS="-x tests/unit"`,
# `make bench BENCH_ARGS="--duration 5 --rounds 2"`.
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install run test lint fmt bench clean

help:
	@echo "make install   create .venv and install Gatehouse with its dev tools"
	@echo "make run       install, then run the whole stack (gatehouse up) until Ctrl-C"
	@echo "make test      lint, type-check, contracts in sync, the whole test suite"
	@echo "make bench     run the benchmarks; writes bench-report.json"
	@echo "make lint      ruff check, ruff format --check, mypy"
	@echo "make fmt       ruff format and ruff check --fix"
	@echo "make clean     remove .venv, caches and reports (keeps the data in .gatehouse/)"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "make: no python3.11 or python3 on PATH" >&2; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "make: $(VENV) has Python $$($(BIN)/python -V 2>&1); Gatehouse needs 3.11 or newer." \
		     "Install python3.11, then: make clean install" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/gatehouse up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m contracts.generate --check
	$(BIN)/pytest $(PYTEST_ARGS)

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis bench-report.json
	find . -path ./.gatehouse -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
