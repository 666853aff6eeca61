"""A real MLflow tracking server for tests, started once per session.

Registry behaviour (aliases, version tags, run lineage of ``models:/<model_id>`` URIs) goes
through the REST API in production, so the gate is tested against ``mlflow server`` rather than a
local file store. Artifacts are proxied by the server (``--serve-artifacts``), as they would be
for a remote client. Use with ``pytest_plugins = ["tests.support.mlflow_server"]`` or by importing
``mlflow_server``; ``running_server`` starts one on another backend store (PostgreSQL in
``tests/production``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Free ports, HTTP probes and process-group shutdown, as for the endpoint.
from contracts.launch import free_port, status, stop

STARTUP_TIMEOUT_S = 60.0


def _mlflow_executable() -> list[str]:
    script = Path(sys.executable).with_name("mlflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def server_command(root: Path, port: int, backend_store_uri: str | None = None) -> list[str]:
    """The ``mlflow server`` command line: the given backend store (default SQLite in ``root``),
    artifacts proxied into ``root``."""
    return [
        *_mlflow_executable(),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", backend_store_uri or f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination", str(root / "artifacts"),
    ]


@contextmanager
def running_server(root: Path, backend_store_uri: str | None = None) -> Iterator[str]:
    """Start ``mlflow server`` (files under ``root``), yield its URI, stop it with its workers."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # The job runner (seven huey consumers) serves GenAI jobs the tests never use; off, the
    # server starts seconds sooner.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_command(root, port, backend_store_uri),
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while status(f"{uri}/health") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"mlflow server did not come up on {uri}:\n{tail}")
            time.sleep(0.25)
        yield uri
    finally:
        stop(process)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a running ``mlflow server``; stopped with its workers at the end of the session."""
    with running_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri
