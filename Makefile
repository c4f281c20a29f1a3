# Kindly: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test browser format bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

## run: dev server (SQLite in .data/), worker, HTTP API, SMS sandbox and a demo portfolio
run: $(STAMP)
	$(BIN)/python -m kindly.programs.stack

## browser: Debian's chromium for the Web UI test (installed when running as root, e.g. in CI)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed (needs root); the Web UI browser test is skipped"; fi; }

## postgres: Debian's PostgreSQL server for the database tests on PostgreSQL (installed when running as root, e.g. in CI)
postgres:
	@{ command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 || \
	  ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: PostgreSQL is not installed (needs root); the PostgreSQL database tests are skipped (they fail under CI=true)"; fi; }

## test: install with test extras, check style and types, run the test suite
test: $(STAMP) browser postgres
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/pytest

## bench: Kindly against bare Temporal on a dev server; writes bench/results.json and bench/results.png
bench: $(STAMP)
	$(BIN)/python -m bench

## soak: hundreds of accounts over months with injected faults, every promise checked (SEED=… replays a run);
## then a smaller portfolio on a real dev server in real time, with worker kills and a server restart
ACCOUNTS ?= 300
DAYS ?= 120
DEV_ACCOUNTS ?= 30
soak: $(STAMP)
	$(BIN)/python -m tests.simulation --accounts $(ACCOUNTS) --days $(DAYS) $(if $(SEED),--seed $(SEED))
	$(BIN)/python -m tests.simulation --dev-server --accounts $(DEV_ACCOUNTS) --days $(DAYS) $(if $(SEED),--seed $(SEED))

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
