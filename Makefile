# The two commands a newcomer runs: `make dev` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV := uv
PY_SOURCES := shared functions infra tests benchmarks scripts

.PHONY: bootstrap test lint typecheck bench load soak cost dev dev-reset demo tokens package deploy invoke secrets
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

## Load against make dev (benchmarks/README.md, "Load"): stepped rates to saturation, one member
## flooding, a burst of 1,000 utterances to a bot. Starts its own make dev on free ports, or
## PORT=<a running make dev's>. Report in .local/bench/load.json (ARGS= e.g. --rates 50,100).
load: bootstrap
	$(UV) run python -m benchmarks.load $(if $(PORT),--port $(PORT)) $(ARGS)

## 10 minutes at a steady rate: memory, latency, nothing lost (benchmarks/README.md, "Soak").
## MINUTES=, RATE= (chat requests a second), PORT= as for load.
soak: bootstrap
	$(UV) run python -m benchmarks.soak $(if $(PORT),--port $(PORT)) $(if $(MINUTES),--minutes $(MINUTES)) $(if $(RATE),--rate $(RATE))

## Cost per million chat messages and bot replies from the last `make load` (docs/capacity.md).
cost: bootstrap
	$(UV) run python -m benchmarks.cost

## The whole product locally: PostgreSQL, the five functions on http://127.0.0.1:$${PORT:-8000}, webhooks, the queue.
dev: bootstrap
	$(UV) run python -m infra.dev

## Wipe the local database of DEV_DATA_DIR (default .local/dev): make dev starts from scratch next time.
dev-reset:
	rm -rf "$${DEV_DATA_DIR:-.local/dev}"

## A narrated conversation against the running `make dev` (PORT= picks one if several run).
demo: bootstrap
	$(UV) run python -m infra.dev.demo

## Access tokens and session cookies for ada and bob, for the running `make dev`:
## eval "$$(make -s tokens PORT=8000)" sets ADA_TOKEN, BOB_TOKEN, ADA_COOKIE, BOB_COOKIE
## (1 hour); FORMAT=json prints them as JSON. Works in any shell: uv need not be on PATH.
tokens: bootstrap
	@$(UV) run python scripts/dev_tokens.py $(if $(filter json,$(FORMAT)),,--shell) $(if $(PORT),--port $(PORT))

## Lambda artifacts (.local/build/*.zip) and the CloudFormation template, offline.
## Stage params go in PARAMS: make package PARAMS="--param=supabaseUrl=https://<ref>.supabase.co
## --param=allowedOrigins=https://app.example.com"; without the required ones the template
## holds placeholders, says so, and `sls deploy` refuses it.
## DIRECT_DB=1 ships psycopg too, for a deployment that sets DATABASE_URL.
package: bootstrap
	$(UV) run python scripts/package_functions.py $(if $(DIRECT_DB),--with-direct-db)
	@echo "==> the CloudFormation template (sls package, offline)"
	$(SLS) package --stage $(STAGE) $(PARAMS)

## Deploy (AWS credentials, the SSM parameters and PARAMS as for package: see README, "Deploy").
## Checks the required params first, offline, before building anything.
deploy: bootstrap
	$(SLS) check-params --stage $(STAGE) $(PARAMS)
	$(MAKE) --no-print-directory package
	$(SLS) deploy --stage $(STAGE) --package .serverless $(PARAMS)

## The functions' secrets from a .env file into SSM (AWS credentials): make secrets STAGE=prod
## ENV_FILE=.env.prod; REGION= if you deploy outside serverless.yml's default region (eu-west-1).
secrets: bootstrap
	$(UV) run python scripts/put_ssm_parameters.py --stage "$(STAGE)" $(if $(ENV_FILE),--env-file "$(ENV_FILE)") $(if $(REGION),--region $(REGION))

## sls invoke local against the running `make dev` (any ports; PORT= picks one of several):
## make invoke FN=threadEnsure (EVENT= another event file; EXPECT=<status> for one that should
## fail). Fails on an error, a 4xx or 5xx, or failed worker records; `make invoke` lists the functions.
invoke: bootstrap
	$(UV) run python -m infra.dev.invoke "$(FN)" "$(EVENT)"
