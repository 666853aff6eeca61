"""Infra validation fails loudly when the packaged Bento cannot serve (the DAG then stops before
``move_alias``); the happy path runs in ``tests/integration/test_pipeline_run.py``."""

from __future__ import annotations

import psutil
import pytest

from contracts.settings import Settings
from pipelines.steps.bento_check import check_bento


def test_a_bento_that_cannot_serve_fails_the_check_and_leaves_no_server(
    settings: Settings,
) -> None:
    before = {p.pid for p in psutil.process_iter()}
    with pytest.raises(RuntimeError, match="did not come up") as failed:
        check_bento(settings, "shoprec:v404", "404", "u_0000000000000000")
    assert "shoprec:v404" in str(failed.value), "the server's own words, for the DAG log"
    started = [p for p in psutil.process_iter(["cmdline"])
               if p.pid not in before and "shoprec:v404" in " ".join(p.info["cmdline"] or [])]
    assert started == []
