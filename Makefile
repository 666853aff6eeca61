# shoprec: every target that needs the environment depends on `setup`, so each is one command.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
export TF_USE_LEGACY_KERAS := 1
export GX_ANALYTICS_ENABLED := false

.PHONY: setup test test-fast lint demo bench clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv \
		|| python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

test: setup
	.venv/bin/ruff check .
	.venv/bin/pytest

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check pipelines models serving tests bench

demo: setup
	bash infra/demo.sh

bench: setup
	$(PY) bench/ingest.py

clean:
	rm -rf data .demo .pytest_cache .ruff_cache
