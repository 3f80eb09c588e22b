# pgfeed — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v /usr/bin/python3.11 || command -v python3)
VENV := .venv
DSN = $(shell scripts/localdb.sh dsn pgfeed)

.PHONY: help setup system db db-stop install demo test bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: system $(VENV)/.installed  ## PostgreSQL + plpython3u + pgvector, and .venv with pgfeed and the model (idempotent)

system:
	@scripts/provision-system.sh

# torch is pinned and installed first: that version has a CPU-only build here,
# while an unpinned torch pulls gigabytes of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	$(VENV)/bin/pgfeed export-model all-MiniLM-L6-v2:onnx-int8 2>&1 | tail -1
	touch $@

db: setup  ## start the project-local cluster (.pgdata/, Unix socket, port 55432 or $$PGFEED_PORT)
	@scripts/localdb.sh start
	@psql -q "$(shell scripts/localdb.sh dsn postgres)" -tc "SELECT 1 FROM pg_database WHERE datname = 'pgfeed'" | grep -q 1 \
		|| psql -q "$(shell scripts/localdb.sh dsn postgres)" -c "CREATE DATABASE pgfeed"

db-stop:  ## stop the local cluster
	@scripts/localdb.sh stop

install: db  ## install pgfeed into the local database `pgfeed`
	$(VENV)/bin/pgfeed install --dsn "$(DSN)"

demo: install  ## load the demo corpus and print two users' feeds and the cold-start feed
	$(VENV)/bin/python demo/run.py --dsn "$(DSN)"

test: db  ## ruff, then the test suite against the local cluster (or $$PGFEED_TEST_DSN); plpgsql_check runs in it
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: install  ## benchmarks (BENCH_ARGS, e.g. --items 100000): ratios measured side by side, JSON in bench/results/
	$(VENV)/bin/python bench/run.py --dsn "$(DSN)" $(BENCH_ARGS)

clean: db-stop  ## remove the local cluster and the virtual environment
	rm -rf .pgdata $(VENV)
