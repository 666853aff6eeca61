"""Shared fixtures: settings pointing at a temporary data directory, and the shared data sets.

``unit/<package>/test_<module>.py`` tests one module (some train a tiny model: marked ``slow``
where it takes tens of seconds); ``integration/`` runs real servers, processes, Airflow and the
shared data sets; ``production/`` the production profile (``make test-production``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import models  # noqa: F401  (sets TF_USE_LEGACY_KERAS for the tests and their subprocesses)
from contracts import registry
from contracts.settings import Settings
from tests.support.mlflow_server import mlflow_server  # noqa: F401  (session fixture, one server)
from tests.support.object_store import s3_bucket  # noqa: F401  (session fixture, one S3 server)

# The endpoint's fixtures (a tiny champion, one real server per session) for every test folder.
pytest_plugins = ("tests.support.endpoint",)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
ON_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under ``tests/integration`` (real servers, processes, the shared data) is
    marked ``integration``, so ``pytest -m "not integration and not slow"`` is the fast set."""
    integration = REPO / "tests" / "integration"
    for item in items:
        if integration in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under ``CI=true`` a skip fails its test: CI has every real part the tests skip without
    (chromium, PostgreSQL, Redis, Prometheus, ../shared), so there a skip means a broken machine,
    not a test that ran. Elsewhere a skip stays a skip with its message; ``may_skip`` exempts."""
    outcome = yield
    report = outcome.get_result()
    if (ON_CI and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("may_skip") is None):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may be: {reason}"


# Under ``pytest -n`` (``make test``) a module's tests run on one worker, so a module fixture
# (the ingested Online Retail year) is set up once; the serving tests, which share the session's
# trained champion and its server, run on one worker together, so those start once.
ONE_WORKER = ("tests/integration/serving/",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Replaces xdist's default (``load``) and ``loadscope``; any other ``--dist`` is kept."""
    if config.getvalue("dist") not in ("load", "loadscope"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return next((folder for folder in ONE_WORKER if path.startswith(folder)), path)

    return ByModule(config, log)


def shared_dataset(name: str) -> Path:
    """Path of a data set under ../shared/datasets, or skip the test saying why."""
    path = SHARED_DATASETS / name
    if not path.exists():
        pytest.skip(f"../shared/datasets/{name} is absent: real-data tests need shared data sets")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", pseudonym_key="test-key")


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
