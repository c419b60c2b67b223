# The two commands a newcomer runs: `make dev` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV := uv
PY_SOURCES := shared functions infra tests benchmarks

.PHONY: bootstrap test lint typecheck unit bench dev dev-reset demo

bootstrap:
	@scripts/bootstrap.sh

## Lint, type checks and every test, on a private PostgreSQL started for the run.
test: bootstrap
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy $(PY_SOURCES)
	$(UV) run pytest

lint: bootstrap
	$(UV) run ruff check . && $(UV) run ruff format --check .

typecheck: bootstrap
	$(UV) run mypy $(PY_SOURCES)

## Every benchmark, one table at the end (see benchmarks/README.md).
bench: bootstrap
	$(UV) run python -m benchmarks

dev: bootstrap
	@echo "make dev: not yet (issue 7). The database layer runs under 'make test'."

dev-reset:
	rm -rf .local/dev

demo:
	@echo "make demo: not yet (issue 7)."
