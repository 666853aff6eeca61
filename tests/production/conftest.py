"""Real PostgreSQL and Redis for the production-profile tests, each test on databases of its own.

The servers are those the project brief names (PostgreSQL on 127.0.0.1:5432 with trust auth for
``postgres``, Redis on 127.0.0.1:6379); SHOPREC_TEST_POSTGRES and SHOPREC_TEST_REDIS point
elsewhere. Where they are not reachable the tests skip saying so, except under CI (``CI=true``),
which has both: there a missing server fails the run instead of hiding the tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra.production import databases
from tests.support.mlflow_server import running_server

POSTGRES = os.environ.get("SHOPREC_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS = os.environ.get("SHOPREC_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, why: str) -> None:
    """Skip; under CI=true the skip fails the run instead (tests/conftest.py)."""
    pytest.skip(f"{what} is not reachable ({why}); the production-profile tests need it")


@pytest.fixture(scope="session")
def postgres() -> str:
    """URL of the PostgreSQL server, without a database name."""
    problem = databases.unreachable(f"{POSTGRES}/postgres")
    if problem:
        _unavailable(f"PostgreSQL at {POSTGRES}", problem)
    return POSTGRES


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError as err:
        _unavailable(f"Redis at {REDIS}", str(err))
    return REDIS


def unique_name(purpose: str) -> str:
    """``shoprec_test_<purpose>_<random>``: safe as a database name, a queue and a key prefix."""
    return f"shoprec_test_{purpose}_{uuid.uuid4().hex[:10]}"


@contextmanager
def throwaway_database(server: str, purpose: str) -> Iterator[str]:
    """A fresh database on ``server`` (its URL), dropped afterwards whatever happened."""
    url = f"{server}/{unique_name(purpose)}"
    assert databases.ensure(url), f"{url} existed already"
    try:
        yield url
    finally:
        databases.drop(url)


@pytest.fixture(scope="module")
def mlflow_store(postgres: str) -> Iterator[str]:
    """URL of a fresh PostgreSQL database for an MLflow backend store."""
    with throwaway_database(postgres, "mlflow") as url:
        yield url


@pytest.fixture(scope="module")
def mlflow_postgres(mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of an ``mlflow server`` whose backend store is ``mlflow_store``."""
    root: Path = tmp_path_factory.mktemp("mlflow-postgres")
    with running_server(root, mlflow_store) as uri:
        yield uri
