# The two commands a newcomer runs: `make dev` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV := uv
PY_SOURCES := shared functions infra tests benchmarks scripts

.PHONY: bootstrap test lint typecheck bench dev dev-reset demo package deploy invoke
SLS := PATH="$(CURDIR)/.venv/bin:$$PATH" npx --no-install sls
STAGE ?= dev

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

## The whole product locally: PostgreSQL, the five functions on http://127.0.0.1:$${PORT:-8000}, webhooks, the queue.
dev: bootstrap
	$(UV) run python -m infra.dev

## Wipe the local database (make dev starts from scratch next time).
dev-reset:
	rm -rf .local/dev

## A narrated conversation against a running `make dev` (same PORT).
demo:
	$(UV) run python -m infra.dev.demo

## Lambda artifacts (.local/build/*.zip) and the CloudFormation template, offline.
package: bootstrap
	$(UV) run python scripts/package_functions.py
	$(SLS) package --stage $(STAGE)

## Deploy (needs AWS credentials and the SSM parameters: see README, "Deploy").
deploy: package
	$(SLS) deploy --stage $(STAGE) --package .serverless

## sls invoke local against the running `make dev` (any ports; PORT= picks one of several):
## make invoke FN=threadEnsure EVENT=events/thread-ensure.json. Fails on an error or a 5xx.
invoke: bootstrap
	$(UV) run python -m infra.dev.invoke "$(FN)" "$(EVENT)"
