"""Shared fixtures: settings pointing at a temporary data directory, and the shared data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import models  # noqa: F401  (sets TF_USE_LEGACY_KERAS for the tests and their subprocesses)
from contracts.settings import Settings
from tests.mlflow_server import mlflow_server  # noqa: F401  (session fixture, one server)
from tests.object_store import s3_bucket  # noqa: F401  (session fixture, one S3 server)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    """Path of a data set under ../shared/datasets, or skip the test saying why."""
    path = SHARED_DATASETS / name
    if not path.exists():
        pytest.skip(f"../shared/datasets/{name} is absent: real-data tests need shared data sets")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", pseudonym_key="test-key")
