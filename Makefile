# Gatehouse: `make run` to try it, `make test` before you push, `make bench` to measure.
#
# Everything runs from ./.venv, created on first use with python3.11 (or python3 when
# there is no python3.11; Gatehouse needs 3.11 or newer), and installed only from the lock
# file requirements-dev.lock (exact versions and hashes; `make lock` refreshes it). The install
# is redone only when pyproject.toml or the lock changed since the last one.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements-dev.lock
# Extra arguments, e.g. `make test PYTEST_ARGS="-x tests/unit"`,
# `make bench BENCH_ARGS="--duration 5 --rounds 2"`.
PYTEST_ARGS ?=
# The suite runs on this many pytest-xdist workers, each with its own embedded NATS and
# PostgreSQL (`make test PYTEST_WORKERS=0` runs it in one process). Temp dirs live in
# .pytest-tmp/: pytest's shared /tmp/pytest-of-<user> is re-chmodded by every worker, which
# would take away the traversal the embedded PostgreSQL's own user needs (it runs as
# `pgserver` when we are root).
PYTEST_WORKERS ?= 2
BENCH_ARGS ?=

.PHONY: help install lock lock-check run test test-tools lint fmt bench clean

help:
	@echo "make install   create .venv and install Gatehouse with its dev tools from the lock"
	@echo "make lock      refresh requirements*.lock to the newest releases pyproject.toml allows"
	@echo "make lock-check  fail if the lock files no longer satisfy pyproject.toml"
	@echo "make run       install, then run the whole stack (gatehouse up) until Ctrl-C"
	@echo "make test      lint, type-check, contracts in sync, the whole test suite"
	@echo "make bench     run the benchmarks; writes bench-report.json"
	@echo "make lint      ruff check, ruff format --check, mypy"
	@echo "make fmt       ruff format and ruff check --fix"
	@echo "make clean     remove .venv, caches and reports (keeps the data in .gatehouse/)"

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -n "$(PYTHON)" || { echo "make: no python3.11 or python3 on PATH" >&2; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "make: $(VENV) has Python $$($(BIN)/python -V 2>&1); Gatehouse needs 3.11 or newer." \
		     "Install python3.11, then: make clean install" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	$(BIN)/python -m pip check --disable-pip-version-check
	@touch $(STAMP)

lock:
	PYTHON=$(PYTHON) deploy/lock/refresh.sh refresh

lock-check:
	PYTHON=$(PYTHON) deploy/lock/refresh.sh check

run: install
	$(BIN)/gatehouse up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint test-tools
	$(BIN)/python -m contracts.generate --check
	$(BIN)/pytest -n $(PYTEST_WORKERS) --basetemp=$(CURDIR)/.pytest-tmp $(PYTEST_ARGS)

# Debian's tools the tests run for real (ssh-keygen signs and fingerprints SSH keys; gpg makes the
# README walkthrough's OpenPGP key and signs with it), installed when missing and apt-get is
# there; without them those assertions skip, saying why.
test-tools:
	@command -v ssh-keygen >/dev/null || ! command -v apt-get >/dev/null || \
		{ echo "installing openssh-client (ssh-keygen) for the tests"; \
		  apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null; }
	@command -v gpg >/dev/null || ! command -v apt-get >/dev/null || \
		{ echo "installing gnupg (gpg) for the tests"; \
		  apt-get update -qq && apt-get install -y -qq gnupg >/dev/null; }

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-lock build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .pytest-tmp bench-report.json
	find . -path ./.gatehouse -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
