"""``airflow dags test`` of the three shoprec DAGs on a small synthetic shop, as the assets
chain them.

``shoprec_ingest`` lands the shop (two planted bad batches among them), quarantines the bad ones
and updates the ``shoprec_curated`` asset, which queues ``shoprec_train`` in the metadata DB (no
event posted by hand); that trains two candidates, judges the best against the baselines on the
same window, registers it, builds the Bento of that version, serves that Bento for one explained
call, only then makes it champion, and updates ``shoprec_champion``, which queues
``shoprec_deploy``: it reloads and smoke-calls a real ``shoprec serve``. ``shoprec evaluate``
then re-scores the champion on the window and prints the contract. A second ingest run for the
same logical date finds nothing new, queues nothing and changes nothing. Airflow runs in a
subprocess with its own home and SQLite metadata DB.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.dags.test_shoprec_dags import airflow_env

DAGS = ("shoprec_ingest", "shoprec_train", "shoprec_deploy")
LOGICAL_DATE = "2026-01-15T00:00:00+00:00"
# Small enough to train in seconds, large enough that the model clearly beats popularity.
SHOP = {"days": 10, "users": 120, "items": 80, "seed": 5}
# The shop's evaluation window holds about 30 shoppers: below the default minimum of 50, which
# would (rightly) refuse every promotion; the gate's rule is otherwise the production one.
MIN_USERS = 20
TRAIN_CONFIG = {"dim": 16, "retrieval_epochs": 3, "ranking_epochs": 1, "batch_size": 64,
                "history_length": 10, "retrieve_n": 50, "hard_pool": 10}
GRID = [{"item_item": False}, {}]  # the product default's two models; the first alone on Celery


def _airflow(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    airflow = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"airflow {args[:2]} failed:\n{done.stdout[-4000:]}\n" \
                                 f"{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def _task_states(env: dict[str, str], dag_id: str) -> dict[str, list[str]]:
    output = _airflow(env, "tasks", "states-for-dag-run", dag_id, LOGICAL_DATE, "-o", "json")
    rows = next(json.loads(line) for line in output.splitlines() if line.startswith("[{"))
    states: dict[str, list[str]] = {}
    for row in rows:
        states.setdefault(row["task_id"], []).append(row["state"])
    return states


def _evaluate_prints_the_contract(env: dict[str, str], data: Path, version: str,
                                  users: int) -> None:
    """``shoprec evaluate --json`` re-scores the champion on the window the gate used."""
    shoprec = Path(sys.executable).with_name("shoprec")
    done = subprocess.run([str(shoprec), "evaluate", "--data-dir", str(data), "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["users"] == users and result["window"]["data_hash"]
    assert result["model_uris"] == {"champion": f"models:/{env['SHOPREC_MODEL_NAME']}/{version}"}
    assert set(result["baselines"]) == {"popularity", "ease"}
    assert set(result["paired"]) <= {"champion-popularity", "champion-ease"}
    figures = [f for group in ("models", "baselines", "paired") for named in
               result[group].values() for f in [*named.values(), *(
                   v for part in named.get("slices", {}).values() for v in part.values())]
               if isinstance(f, dict) and f.get("ci95")]
    assert figures and all(f["ci95"][0] <= f["value"] <= f["ci95"][1] for f in figures)
    assert result["models"]["champion"]["ndcg@10"]["value"] > 0


def _served_in_both_languages(env: dict[str, str]) -> None:
    """The deployed endpoint answers the synthetic shop's shoppers in Chinese with the English
    answer's facts, every item (issue 29; names, the titles and brands, stay as they are)."""
    import pandas as pd

    from pipelines.data.synthetic_catalogue import BRANDS
    from tests.support.endpoint import Server
    from tests.support.reason_words import same_facts_in_chinese

    inbox = Path(env["SHOPREC_INBOX_DIR"])
    titles = sorted(pd.read_csv(inbox / "items.csv")["title"].astype(str), key=len, reverse=True)
    server = Server(f"http://127.0.0.1:{env['SHOPREC_SERVE_PORT']}", Path(env["SHOPREC_DATA_DIR"]))
    compared = 0
    for user in pd.read_csv(inbox / "users.csv")["customer_id"].astype(str)[:40]:
        answers = []
        for language in ("en", "zh-CN"):
            status, answer = server.call("/recommend", {"user_id": user, "k": 5},
                                         headers={"Accept-Language": language})
            assert status == 200, answer
            answers.append(answer)
        compared += same_facts_in_chinese(*answers, titles, list(BRANDS))
    assert compared >= 40 * 5


def _queued(env: dict[str, str]) -> list[str]:
    """The DAGs an asset event has queued a run for (the scheduler starts them), from the
    metadata DB."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        return sorted(dag for (dag,) in db.execute(
            "SELECT target_dag_id FROM asset_dag_run_queue"))


def _asset_events(env: dict[str, str]) -> list[tuple[str, str]]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        return sorted(db.execute("SELECT a.name, e.source_dag_id FROM asset_event e "
                                 "JOIN asset a ON a.id = e.asset_id"))


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_shop(root: Path, tracking_uri: str, serve_port: int) -> dict[str, str]:
    """A small faulty shop in ``root/inbox`` and the SHOPREC_* settings that make the DAG land,
    train (in seconds), register and serve it under names of its own."""
    from pipelines.data.synthetic_shop import ShopSpec, generate_shop

    generate_shop(root / "inbox", ShopSpec(faults=True, **SHOP))
    return {
        "SHOPREC_DATA_DIR": str(root / "data"),
        "SHOPREC_INBOX_DIR": str(root / "inbox"),
        "SHOPREC_TRACKING_URI": tracking_uri,
        "SHOPREC_MODEL_NAME": f"shoprec-dag-{root.name}",
        "SHOPREC_DATASET": f"dag-{root.name}",
        "SHOPREC_PSEUDONYM_KEY": "test-key",
        "SHOPREC_TRAIN_CONFIG": json.dumps(TRAIN_CONFIG),
        "SHOPREC_TRAIN_GRID": json.dumps(GRID),
        "SHOPREC_GATE_MIN_USERS": str(MIN_USERS),
        "SHOPREC_SERVE_HOST": "127.0.0.1",
        "SHOPREC_SERVE_PORT": str(serve_port),
    }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str):
    """Shop in the inbox, migrated Airflow DB, a running endpoint; yields (env, data dir)."""
    from contracts import launch

    root = tmp_path_factory.mktemp("pipeline")
    data = root / "data"
    port = launch.free_port()
    shoprec = tiny_shop(root, mlflow_server, port)
    env = airflow_env(root / "airflow") | shoprec | {"MLFLOW_TRACKING_URI": mlflow_server}
    _airflow(env, "db", "migrate")
    _airflow(env, "dags", "reserialize")  # every DAG in the DB: the assets' consumers known
    for dag_id in DAGS[1:]:  # a paused consumer is never queued
        _airflow(env, "dags", "unpause", dag_id)
    server = launch.start(data, port, root / "serve.log", env=shoprec)
    try:
        yield env, data
    finally:
        launch.stop(server)


@pytest.mark.slow
def test_dag_run_trains_promotes_packages_serves_and_reruns_idempotently(pipeline) -> None:
    from mlflow.tracking import MlflowClient

    env, data = pipeline
    ingest, train, deploy = DAGS
    log = _airflow(env, "dags", "test", ingest, LOGICAL_DATE)

    states = _task_states(env, ingest)
    assert all(v == ["success"] for v in states.values()), states
    assert _asset_events(env) == [("shoprec_curated", ingest)]
    assert _queued(env) == [train], "accepted data queues a training run"
    manifests = [json.loads(p.read_text()) for p in (data / "batches").glob("*.json")]
    quarantined = {m["content_hash"] for m in manifests if m["status"] == "quarantined"}
    reasons = [m["reason"] for m in manifests if m["status"] == "quarantined"]
    assert len(quarantined) == 2 and all(reasons)
    assert all(f"quarantined {m['batch']}: {m['reason']}" in log for m in manifests
               if m["status"] == "quarantined"), "each quarantined batch reported with its reason"

    _airflow(env, "dags", "test", train, LOGICAL_DATE)
    states = _task_states(env, train)
    assert states.pop("train_candidate") == ["success", "success"], "one run per grid entry"
    assert all(v == ["success"] for v in states.values()), states
    assert ("shoprec_champion", train) in _asset_events(env)
    assert deploy in _queued(env), "a promotion queues the deployment"
    (feature_set,) = (data / "features").iterdir()
    lineage = json.loads((feature_set / "batches.json").read_text())
    trained_on = {m["content_hash"] for m in lineage}
    assert trained_on and not trained_on & quarantined, "training left the quarantined out"

    _airflow(env, "dags", "test", deploy, LOGICAL_DATE)
    states = _task_states(env, deploy)
    assert all(v == ["success"] for v in states.values()), states

    uri = env["SHOPREC_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # not a URI another test set
    name = env["SHOPREC_MODEL_NAME"]
    champion = client.get_model_version_by_alias(name, "champion")
    assert client.get_run(champion.run_id).data.tags["shoprec.candidate_rank"] == "1"
    experiment = client.get_experiment_by_name(f"shoprec-{env['SHOPREC_DATASET']}")
    runs = client.search_runs([experiment.experiment_id], "tags.model_family = 'tfrs'")
    assert len(runs) == len(GRID), "each candidate is its own MLflow run"
    bentos = list((data / "bentoml" / "bentos" / name).glob("*/bento.yaml"))
    assert [b.parent.name for b in bentos] == [f"v{champion.version}"], "the gated version's"
    tags = champion.tags
    assert tags["gate_decision"] == "promoted" and int(tags["gate_users"]) >= MIN_USERS
    assert tags["gate_baseline_name"] in ("popularity", "ease"), "judged against the best floor"
    _evaluate_prints_the_contract(env, data, champion.version, int(tags["gate_users"]))
    _served_in_both_languages(env)

    curated, versions = _files(data / "curated"), len(client.search_model_versions(
        f"name = '{name}'"))
    events = _asset_events(env)
    _airflow(env, "dags", "test", ingest, LOGICAL_DATE)

    again = _task_states(env, ingest)
    assert again["land"] == again["validate"] == again["route"] == ["success"]
    assert again["announce_curated"] == again["report_quarantined"] == ["skipped"]
    assert _asset_events(env) == events, "nothing new: no training queued"
    assert _files(data / "curated") == curated, "nothing landed or curated twice"
    assert len(list((data / "batches").glob("*.json"))) == len(manifests)
    assert len(client.search_model_versions(f"name = '{name}'")) == versions
