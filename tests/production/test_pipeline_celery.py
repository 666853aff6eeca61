"""The real shoprec DAGs on the production profile, started as users start them.

``infra/production/up.sh`` runs with the example env file as it is, its knobs pointed at fresh
PostgreSQL databases (Airflow metadata and Celery results; MLflow backend store) that up.sh hands
to roles of their own, a Redis user, key prefix and queue of this test's own, free ports and
generated secrets. ``shoprec_ingest`` is triggered over the REST API on a small faulty shop;
the scheduler must then start ``shoprec_train`` from the asset ingestion updated, and
``shoprec_deploy`` from the one training updated on its promotion (no event posted by hand),
every run succeeding with every task executed by the Celery worker, its state in PostgreSQL,
and a champion in the PostgreSQL-backed registry that the endpoint then serves. ``down.sh``
stops everything, even on failure; the databases are dropped.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts import launch
from infra.follow_dag import Api, follow, new_run, run_ids, wait_for_dag
from infra.production import databases
from tests.integration.test_pipeline_run import DAGS, GRID, tiny_shop
from tests.production.conftest import throwaway_database, unique_name

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "infra" / "production"
RUN_TIMEOUT_S = 480.0


@dataclass
class Running:
    env: dict[str, str]
    home: Path
    airflow_url: str
    airflow_db: str
    mlflow_db: str
    queue: str
    roles: tuple[str, str]

    @property
    def api(self) -> Api:
        passwords = self.home / "airflow" / "simple_auth_manager_passwords.json.generated"
        return Api(self.airflow_url, "admin",
                   json.loads(passwords.read_text())["admin"])

    def log(self, name: str) -> str:
        return (self.home / "logs" / f"{name}.log").read_text(errors="replace")


def _script(name: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PROFILE / name)], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _profile_env(root: Path, postgres: str, redis_url: str, airflow_db: str, mlflow_db: str,
                 queue: str) -> dict[str, str]:
    """The test's environment for up.sh: the example's knobs and secrets, nothing inherited
    from an Airflow, MLflow or shoprec set-up of the machine."""
    from cryptography.fernet import Fernet

    mlflow_port, airflow_port, serve_port = (launch.free_port() for _ in range(3))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MLFLOW_", "SHOPREC_"))}
    env |= tiny_shop(root, f"http://127.0.0.1:{mlflow_port}", serve_port)
    return env | {
        "SHOPREC_TRAIN_GRID": json.dumps(GRID[:1]),  # one mapped candidate: the test's CPU budget
        "SHOPREC_PROD_ENV": str(PROFILE / "shoprec.env.example"),
        "SHOPREC_PROD_HOME": str(root / "prod"),
        "SHOPREC_PROD_POSTGRES": postgres,
        "SHOPREC_PROD_AIRFLOW_DB": airflow_db,
        "SHOPREC_PROD_MLFLOW_DB": mlflow_db,
        "SHOPREC_PROD_AIRFLOW_ROLE": f"{queue}_airflow",
        "SHOPREC_PROD_MLFLOW_ROLE": f"{queue}_mlflow",
        "SHOPREC_PROD_AIRFLOW_DB_PASSWORD": secrets.token_urlsafe(24),
        "SHOPREC_PROD_MLFLOW_DB_PASSWORD": secrets.token_urlsafe(24),
        "SHOPREC_PROD_REDIS": redis_url,
        "SHOPREC_PROD_REDIS_USER": queue,
        "SHOPREC_PROD_REDIS_PASSWORD": secrets.token_urlsafe(24),
        "SHOPREC_PROD_QUEUE": queue,
        "SHOPREC_MLFLOW_PORT": str(mlflow_port),
        "SHOPREC_AIRFLOW_PORT": str(airflow_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(launch.free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(launch.free_port()),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "SHOPREC_API_TOKEN": secrets.token_urlsafe(16),
    }


def _forget_queue(redis_url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{queue}:*"):
        client.delete(key)
    client.acl_deluser(queue)


@pytest.fixture(scope="module")
def running(postgres: str, redis_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("production")
    queue = unique_name("queue")
    roles = (f"{queue}_airflow", f"{queue}_mlflow")
    try:
        with throwaway_database(postgres, "airflow") as airflow_url, \
                throwaway_database(postgres, "mlflow") as mlflow_url:
            airflow_db, mlflow_db = (url.rsplit("/", 1)[1] for url in (airflow_url, mlflow_url))
            env = _profile_env(root, postgres, redis_url, airflow_db, mlflow_db, queue)
            profile = Running(env, root / "prod",
                              f"http://127.0.0.1:{env['SHOPREC_AIRFLOW_PORT']}",
                              airflow_url, mlflow_url, queue, roles)
            try:
                up = _script("up.sh", env, timeout=600)
                assert up.returncode == 0, \
                    f"up.sh failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
                yield profile
            finally:
                _script("down.sh", env, timeout=120)
                _forget_queue(redis_url, queue)
    finally:
        for role in roles:  # after the databases they owned
            databases.drop_role(postgres, role)


@pytest.mark.production
def test_dag_runs_on_the_celery_worker_with_postgres_stores(running: Running) -> None:
    from mlflow.tracking import MlflowClient

    api = running.api
    for dag_id in DAGS:
        wait_for_dag(api, dag_id, timeout=180)
    before = {dag_id: run_ids(api, dag_id) for dag_id in DAGS}
    for dag_id in reversed(DAGS):  # consumers first, so the asset events find them listening
        api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
    ingest, train, deploy = DAGS
    run_id = api.post(f"/api/v2/dags/{ingest}/dagRuns", {"logical_date": None})["dag_run_id"]
    # Unpausing also lets the scheduler start the latest daily ingest run (catchup=False); the
    # two take turns (max_active_runs=1), and whichever comes second finds nothing new.
    deadline = time.monotonic() + RUN_TIMEOUT_S
    outcomes = [follow(api, ingest, {run_id}, timeout=RUN_TIMEOUT_S, poll=5)]
    for dag_id in (train, deploy):  # started by the scheduler from the assets, not by us
        started = new_run(api, dag_id, before[dag_id], deadline, poll=5)
        outcomes.append(follow(api, dag_id, {started}, deadline - time.monotonic(), poll=5))

    tis, states = {}, {}
    for dag_id in DAGS:
        for r in api.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=10")["dag_runs"]:
            key = (dag_id, r["dag_run_id"])
            tis[key] = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{r['dag_run_id']}"
                               "/taskInstances?limit=100")["task_instances"]
            states[key] = sorted((ti["task_id"], ti["map_index"], ti["state"])
                                 for ti in tis[key])
    assert outcomes == [0, 0, 0], f"{states}\nworker log ends:\n{running.log('worker')[-4000:]}"
    runs = {dag_id: [run for d, run in states if d == dag_id] for dag_id in DAGS}
    assert run_id in runs[ingest] and len(runs[ingest]) <= 2, states
    announced = [run for run in runs[ingest]
                 if ("announce_curated", -1, "success") in states[(ingest, run)]]
    assert len(announced) == 1, f"one ingest run queues training, a second nothing: {states}"
    assert len(runs[train]) == 1 and len(runs[deploy]) == 1, "one run each, from the assets"
    for dag_id in (train, deploy):
        assert all(state == "success" for _, _, state in states[(dag_id, runs[dag_id][0])]), \
            states
    assert ("train_candidate", 0, "success") in states[(train, runs[train][0])]

    # Executed by Celery: queued on this profile's queue, picked up by its worker, and the
    # results recorded in Celery's result backend on PostgreSQL.
    ran = [ti for instances in tis.values() for ti in instances if ti["state"] == "success"]
    assert {ti["queue"] for ti in ran} == {running.queue}
    worker_log = running.log("worker")
    assert "Executing workload in Celery" in worker_log
    assert all(ti["id"] in worker_log for ti in ran), "every task instance ran on the worker"
    with databases.cursor(running.airflow_db) as cursor:
        # Airflow and MLflow connect as their own roles, which own their databases.
        cursor.execute("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname IN (%s, %s) "
                       "AND pid <> pg_backend_pid()",
                       (running.airflow_db.rsplit("/", 1)[1], running.mlflow_db.rsplit("/", 1)[1]))
        assert {user for (user,) in cursor.fetchall()} <= set(running.roles)
        cursor.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                       (running.airflow_db.rsplit("/", 1)[1],))
        assert cursor.fetchone()[0] == running.roles[0]
        cursor.execute("SELECT dag_id, run_id, state FROM dag_run")
        assert {(d, r): state for d, r, state in cursor.fetchall()} == {
            key: "success" for key in tis}
        cursor.execute("SELECT run_type FROM dag_run WHERE dag_id IN (%s, %s)", (train, deploy))
        assert {t for (t,) in cursor.fetchall()} == {"asset_triggered"}
    # The worker stores a task's Celery result after the task has reported success to
    # Airflow: the last one can lag the API's state by a moment.
    stored, waited = 0, time.monotonic() + 60
    while stored < len(ran) and time.monotonic() < waited:
        with databases.cursor(running.airflow_db) as cursor:
            cursor.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            stored = cursor.fetchone()[0]
        time.sleep(0 if stored >= len(ran) else 2)
    assert stored >= len(ran), f"a Celery result per task instance: {stored} of {len(ran)}"

    # The champion is in the registry MLflow keeps in PostgreSQL, and the endpoint serves it.
    name, env = running.env["SHOPREC_MODEL_NAME"], running.env
    # Both URIs explicit: earlier tests in this process leave a registry URI set globally.
    uri = env["SHOPREC_TRACKING_URI"]
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        name, "champion")
    with databases.cursor(running.mlflow_db) as cursor:
        cursor.execute("SELECT version FROM registered_model_aliases WHERE name = %s AND "
                       "alias = 'champion'", (name,))
        assert cursor.fetchall() == [(int(champion.version),)]
    serve = f"http://{env['SHOPREC_SERVE_HOST']}:{env['SHOPREC_SERVE_PORT']}"
    assert launch.status(f"{serve}/readyz") == 200

    # The broker is reached as the profile's own Redis user, with its generated password.
    import redis

    assert env["SHOPREC_PROD_REDIS_PASSWORD"] not in running.log("worker")
    user = redis.Redis.from_url(env["SHOPREC_PROD_REDIS"]).acl_getuser(running.queue)
    assert user["enabled"] and "-@admin" in user["categories"]
