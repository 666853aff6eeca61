"""Fixtures of the model tests: a local MLflow store in the test's own data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import mlflow
import pytest

from contracts import registry
from contracts.settings import Settings


@pytest.fixture
def local_store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """``settings`` with MLflow pointed at SQLite under its data directory (no server)."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SHOPREC_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    assert registry.configure(settings).startswith(f"sqlite:///{settings.data_dir}")
    yield settings
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)  # set_registry_uri exported it
