"""A local S3-compatible server for tests (moto's server mode), started once per session.

The platform reaches it as it would reach any S3 store: through the standard environment
(``AWS_ENDPOINT_URL`` for s3fs and boto3, ``MLFLOW_S3_ENDPOINT_URL`` for MLflow's artifact
store), so subprocesses (Airflow, MLflow) inherit it. ``tests/conftest.py`` registers
``s3_bucket``: a test asks for it by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from contracts.launch import free_port

BUCKET = "shoprec-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[dict[str, str]]:
    """Start the server, create ``BUCKET``; yields the environment that points clients at it
    (also set in this process while the session lasts)."""
    import s3fs
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()  # an instance made before would miss the endpoint
    try:
        s3fs.S3FileSystem().mkdir(BUCKET)
        yield env
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
