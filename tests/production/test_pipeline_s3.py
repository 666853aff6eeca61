"""The three shoprec DAGs with the data directory on an S3-compatible server.

``airflow dags test`` on the small faulty shop of ``tests/integration/test_pipeline_run.py``, with
``SHOPREC_DATA_DIR=s3://...`` on a local moto server and only what must stay local under
``SHOPREC_LOCAL_DIR`` (the SQLite MLflow store, the BentoML store): every task succeeds, the data
zones and the MLflow artifacts land on the store, none on local disk. Minutes, so it runs with
the production profile (``make test-production``), not in ``make test``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from contracts import launch
from tests.integration.test_pipeline_run import (
    DAGS,
    LOGICAL_DATE,
    _airflow,
    _task_states,
    tiny_shop,
)
from tests.support.object_store import BUCKET
from tests.unit.dags.test_shoprec_dags import airflow_env


@pytest.mark.production
def test_the_dag_runs_green_with_the_data_directory_on_s3(
        s3_bucket: dict[str, str], tmp_path: Path) -> None:
    import s3fs
    from mlflow.tracking import MlflowClient

    port = launch.free_port()
    shoprec = tiny_shop(tmp_path, "unused", port)
    del shoprec["SHOPREC_TRACKING_URI"]  # the default: SQLite under the local folder
    prefix = f"{BUCKET}/{tmp_path.name}/data"
    shoprec |= s3_bucket | {"SHOPREC_DATA_DIR": f"s3://{prefix}",
                            "SHOPREC_LOCAL_DIR": str(tmp_path / "local")}
    env = {k: v for k, v in airflow_env(tmp_path / "airflow").items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")} | shoprec
    _airflow(env, "db", "migrate")
    endpoint = launch.spawn(  # no --data-dir: `shoprec serve` reads the URI from the settings
        [str(Path(sys.executable).with_name("shoprec")), "serve", "--host", "127.0.0.1",
         "--port", str(port)], port, tmp_path / "serve.log", env)
    try:
        for dag_id in DAGS:  # in the order their assets chain them
            _airflow(env, "dags", "test", dag_id, LOGICAL_DATE, timeout=1500)
    finally:
        launch.stop(endpoint)

    for dag_id in DAGS:
        states = _task_states(env, dag_id)
        assert all(set(v) == {"success"} for v in states.values()), (dag_id, states)
    zones = {key.split("/")[3] for key in s3fs.S3FileSystem().find(prefix)}
    assert {"landing", "quarantine", "curated", "batches", "features", "reports",
            "mlartifacts"} <= zones
    local = {p.name for p in (tmp_path / "local").iterdir()}
    assert "mlflow.db" in local and not local & zones, "no data zone on local disk"
    uri = f"sqlite:///{tmp_path / 'local' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(env["SHOPREC_MODEL_NAME"], "champion")
    assert champion.source.startswith("models:/") or champion.source.startswith("s3://")
    assert client.get_run(champion.run_id).info.artifact_uri.startswith(f"s3://{prefix}/")
