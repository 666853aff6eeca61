# shoprec: every target that needs the environment depends on `setup`, so each is one command.
SHELL := /bin/bash
# uv from PATH, else the copy pip installs into this Python (`python3 -m uv`).
UV ?= $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
# PYTHON=3.12 (a version or an interpreter's path): the tests on another Python, in an
# environment of its own (.venv-3.12) from the same uv.lock; unset, .venv as always.
PYTHON ?=
VENV := $(if $(PYTHON),.venv-$(notdir $(PYTHON)),.venv)
# pyenv's shims answer only for its global version: give uv the interpreter pyenv has, if any.
UV_PYTHON_ARG := $(if $(PYTHON),--python $(or $(wildcard $(shell pyenv prefix $(PYTHON) \
	2>/dev/null)/bin/python3),$(PYTHON)))
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup i18n test test-fast test-long test-production lint demo demo-stop prod-up prod-down bench bench-serve bench-store bench-scale bench-online clean

# `uv sync --frozen` is a no-op in about a second when the environment is current.
setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen $(UV_PYTHON_ARG)

# Shopper-facing words (issue 29, docs/i18n.md): extract the messages from the code into the
# template, merge it into every locale's catalog, compile the catalogs (committed, .po and .mo).
I18N := contracts/locales
i18n: setup
	$(VENV)/bin/pybabel extract -k Template:1 -k Counted:1,2 --no-location --sort-output \
		--project shoprec -o $(I18N)/shoprec.pot models contracts serving
	$(VENV)/bin/pybabel update -D shoprec -i $(I18N)/shoprec.pot -d $(I18N) --no-fuzzy-matching \
		--ignore-obsolete
	$(VENV)/bin/pybabel compile -D shoprec -d $(I18N) --statistics
	$(VENV)/bin/pybabel compile -D catalogue -d $(I18N)

# Tests run on TEST_WORKERS processes (pytest-xdist), a module on one (tests/conftest.py), in
# collection order: the long integration modules first, so no worker waits on one at the end.
TEST_WORKERS ?= 2
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --no-loadscope-reorder

# The unit tests alone, the slow ones left out: what to run while editing.
test-fast: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -m "not integration and not slow and not production"

lint: setup
	$(VENV)/bin/ruff check .

# MLflow :5000, Airflow :8080 and the endpoint :3000 under .demo/; `make demo-stop` ends them.
demo: setup
	bash infra/demo.sh

demo-stop:
	bash infra/demo-stop.sh

# PostgreSQL + CeleryExecutor/Redis profile under .prod/ (settings: infra/production/shoprec.env,
# created from shoprec.env.example with generated secrets on the first run); `make prod-down` ends it.
prod-up: setup
	bash infra/production/up.sh

prod-down:
	bash infra/production/down.sh

# The end-to-end runs that take minutes each (20 SIGKILLs over an ingest, simulated canaries):
# kept out of `make test` for time, run by CI after it.
test-long: setup
	$(VENV)/bin/pytest -m long -n $(TEST_WORKERS) --no-loadscope-reorder

# The production profile end to end (real PostgreSQL and Redis, Celery worker; minutes): kept
# out of `make test` for time, run by CI after it. The PostgreSQL registry tests are in both.
test-production: setup
	$(VENV)/bin/pytest -m production -n $(TEST_WORKERS) --no-loadscope-reorder tests/production

# Each benchmark prints one JSON object; the model benchmarks need ../shared/datasets.
bench: setup
	$(PY) bench/ingest.py
	$(VENV)/bin/shoprec benchmark --dataset ml-100k --json
	$(VENV)/bin/shoprec benchmark --dataset online-retail --json
	$(PY) bench/fresh_state.py

# The demo's pseudonymisation key unless one is set: the benchmarks' servers need the key its
# champion's data was pseudonymised with.
DEMO_KEY = SHOPREC_PSEUDONYM_KEY="$${SHOPREC_PSEUDONYM_KEY:-$$(cat .demo/pseudonym.key 2>/dev/null)}"

# Load test of the real endpoint on the demo's champion (needs `make demo` running: its MLflow).
bench-serve: setup
	SHOPREC_TRACKING_URI=http://127.0.0.1:5000 $(DEMO_KEY) $(PY) bench/serve_load.py --data-dir .demo/data --locales en,zh-CN

# What the online shopper store costs per request and how soon feedback counts, under load
# (needs `make demo` running, and Redis on 127.0.0.1:6379 for its Redis run).
bench-store: setup
	SHOPREC_TRACKING_URI=http://127.0.0.1:5000 $(DEMO_KEY) $(PY) bench/store_load.py --data-dir .demo/data

# The cost curve (issue 17): every stage's time and peak RSS at synthetic shops of 1x, 4x and 16x
# the demo's events (SIZES=1,4 for fewer); one JSON object. Long at 16x: run it on a quiet machine.
bench-scale: setup
	$(PY) bench/scale.py $(if $(SIZES),--sizes $(SIZES))

# Issue 26's online goals on the real endpoint with simulated shoppers (no demo needed; about
# 16 min on 2 cores): a model trained on shuffled labels rolled back by the canary's outcome
# read-out, a better one passed, a subtly worse one; A/B split (shares 0.1, 0.5) against
# interleaving. One JSON object (docs/benchmarks.md). USERS=N for another shop size.
bench-online: setup
	$(PY) bench/online_rollout.py $(if $(USERS),--users $(USERS))

clean: demo-stop prod-down
	rm -rf data .demo .pytest_cache .ruff_cache
