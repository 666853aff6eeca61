"""The data directory on an object store: ``SHOPREC_DATA_DIR=s3://bucket/prefix`` against a local
S3-compatible server (moto), through the DAG's own steps: land, validate (quarantine included),
curate, build and load the feature set; nothing of the data directory on local disk."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from contracts.settings import Settings
from contracts.storage import is_remote, local_copy, location
from pipelines.data.curated import read_table
from pipelines.data.features import lineage, load_features
from pipelines.data.landing import land
from pipelines.data.synthetic_shop import ShopSpec, generate_shop
from pipelines.data.zones import DataDir
from pipelines.steps.features import build_features_step
from pipelines.steps.ingest import validate_step
from tests.support.object_store import BUCKET

SHOP = {"days": 4, "users": 40, "items": 24, "seed": 3}


@pytest.fixture
def s3_settings(s3_bucket: dict[str, str], tmp_path: Path) -> Settings:
    return Settings(data_dir=f"s3://{BUCKET}/{tmp_path.name}/data", local_dir=tmp_path / "local",
                    inbox_dir=tmp_path / "inbox", pseudonym_key="test-key")


def test_the_dag_steps_run_on_an_s3_data_directory(s3_settings: Settings, tmp_path) -> None:
    generate_shop(s3_settings.inbox, ShopSpec(faults=True, **SHOP))
    data = DataDir(s3_settings.data_dir)
    assert is_remote(data.root)

    landed = land(s3_settings)
    results = validate_step(s3_settings, [str(f) for f in landed])

    assert landed and all(str(f).startswith(f"s3://{BUCKET}/") for f in landed)
    status = {r["batch"]: r["status"] for r in results}
    assert "accepted" in status.values() and "quarantined" in status.values()
    quarantined = next(r for r in results if r["status"] == "quarantined")
    folder = data.quarantine / quarantined["batch"]
    assert (folder / "summary.md").read_text().startswith(f"# Batch `{quarantined['batch']}`")
    assert (folder / "validation.json").is_file() or "unreadable" in quarantined["reason"]
    assert quarantined["report"].startswith("s3://")
    manifests = data.read_manifests()
    assert {m["batch"] for m in manifests} == set(status)
    accepted = [m for m in manifests if m["status"] == "accepted"]
    assert all(f.startswith(f"s3://{BUCKET}/") for m in accepted for f in m["files"])
    events = read_table(data, "events")
    assert len(events) == sum(m["rows_accepted"] for m in accepted
                              if "events" in m["batch"])
    assert set(events["item_id"]) <= set(read_table(data, "items")["item_id"])

    uri = build_features_step(s3_settings, history_length=4)
    features = load_features(uri)

    assert uri.startswith(f"s3://{BUCKET}/") and "/features/" in uri
    assert len(features.train) > 0 and len(features.valid) > 0
    assert {m["batch"] for m in lineage(uri)[0]} == {m["batch"] for m in accepted}
    assert build_features_step(s3_settings, history_length=4) == uri, "reused, not rebuilt"
    assert not (tmp_path / "local").exists(), "no data zone on local disk"
    # The same landed folders again: every batch is a duplicate, nothing curated twice.
    again = validate_step(s3_settings, [str(f) for f in landed])
    assert {r["status"] for r in again} == {"duplicate"}
    assert len(read_table(data, "events")) == len(events)


def test_local_copy_and_location_round_trip_a_folder(s3_bucket: dict[str, str],
                                                     tmp_path) -> None:
    remote = location(f"s3://{BUCKET}/{tmp_path.name}/folder/")
    (remote / "a.json").write_text(json.dumps({"x": 1}))
    pd.DataFrame({"v": [1, 2]}).to_parquet(tmp_path / "b.parquet")
    (remote / "sub" / "b.parquet").write_bytes((tmp_path / "b.parquet").read_bytes())

    with local_copy(remote) as local:
        assert isinstance(local, Path) and local.name == "folder"
        assert json.loads((local / "a.json").read_text()) == {"x": 1}
        assert pd.read_parquet(local / "sub" / "b.parquet")["v"].tolist() == [1, 2]
    assert not local.exists(), "the copy is removed on exit"
    assert location(tmp_path) == tmp_path and location(tmp_path.as_uri()) == tmp_path
    with pytest.raises(ValueError, match="nope://"):
        location("nope://bucket/x")


def test_a_remote_data_directory_needs_a_local_folder_for_local_state(
        s3_bucket: dict[str, str]) -> None:
    settings = Settings(data_dir=f"s3://{BUCKET}/x", pseudonym_key="k")
    for local_state in ("inbox", "bentoml_store"):
        with pytest.raises(ValueError, match="SHOPREC_LOCAL_DIR"):
            getattr(settings, local_state)
    assert settings.with_values(local_dir=Path("/srv/shoprec")).inbox == Path(
        "/srv/shoprec/inbox")


def test_mlflow_artifacts_go_to_the_same_store(s3_settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from contracts import registry
    from pipelines.tracking import runs as tracking

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SHOPREC_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    try:
        uri = registry.configure(s3_settings)
        with tracking.start_run("object-store", "probe") as run:
            mlflow.log_dict({"ok": True}, "probe.json")
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # set_registry_uri exported it

    assert uri == f"sqlite:///{s3_settings.local_dir / 'mlflow.db'}", "the store stays local"
    artifacts = location(run.info.artifact_uri)
    assert str(artifacts).startswith(f"{s3_settings.data_dir}/mlartifacts/")
    assert json.loads((artifacts / "probe.json").read_text()) == {"ok": True}


def test_the_cli_takes_an_s3_data_directory(s3_bucket: dict[str, str], tmp_path) -> None:
    """``shoprec ingest --data-dir s3://...`` curates on the store, as SHOPREC_DATA_DIR would."""
    import os
    import subprocess
    import sys

    generate_shop(tmp_path / "inbox", ShopSpec(**SHOP))
    uri = f"s3://{BUCKET}/{tmp_path.name}/cli-data"
    shoprec = str(Path(sys.executable).with_name("shoprec"))
    env = os.environ | s3_bucket | {"SHOPREC_PSEUDONYM_KEY": "test-key",
                                    "SHOPREC_LOCAL_DIR": str(tmp_path / "local")}
    done = subprocess.run([shoprec, "ingest", "--source", "synthetic", str(tmp_path / "inbox"),
                           "--data-dir", uri, "--json"], env=env, capture_output=True,
                          text=True, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert results and {r["status"] for r in results} == {"accepted"}
    events = read_table(DataDir(location(uri)), "events")
    assert len(events) == sum(r["rows_accepted"] for r in results if "events" in r["batch"])
    assert not (tmp_path / "cli-data").exists()

    bad = subprocess.run([shoprec, "train", "--data-dir", "nosuchscheme://bucket/x"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "nosuchscheme" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
