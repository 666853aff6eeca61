"""Packaging: the champion into the BentoML store with its lineage, a Bento that serves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contracts import launch
from pipelines.steps.package import SERVING_PACKAGES, pinned_packages
from tests.support.endpoint import KEY, Server, server_env
from tests.support.imports import reached


def _package(data_dir: Path) -> dict:
    shoprec = Path(sys.executable).with_name("shoprec")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    run = subprocess.run([str(shoprec), "package", "--data-dir", str(data_dir)],
                         env=env | server_env(data_dir), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_package_twice_builds_once_with_lineage_labels(champion_dir: Path, tmp_path: Path,
                                                       server: Server) -> None:
    first = _package(champion_dir)
    second = _package(champion_dir)

    assert first == second
    assert first["model_tag"] == first["bento_tag"] == "shoprec:v1" and first["version"] == "1"
    store = champion_dir / "bentoml"
    for kind in ("models", "bentos"):
        versions = [p.name for p in (store / kind / "shoprec").iterdir() if p.is_dir()]
        assert versions == ["v1"], (kind, versions)
    labels = yaml.safe_load((store / "models/shoprec/v1/model.yaml").read_text())["labels"]
    meta = server.call("/metadata", method="GET")[1]
    assert labels["mlflow_run_id"] == first["run_id"] == meta["run_id"]
    assert labels["model_version"] == "1" and labels["data_hash"] == meta["data_hash"]
    logged = meta["metrics"]["ndcg_at_10"]
    assert float(labels["metric.ndcg_at_10"]) == pytest.approx(logged, rel=1e-5)

    # `bentoml serve` on the built Bento, away from any registry: it serves the pinned model,
    # on loopback unless told otherwise (BentoML's own default is every interface).
    port = launch.free_port()
    bentoml = Path(sys.executable).with_name("bentoml")
    bento_env = {"BENTOML_HOME": str(store), "SHOPREC_DATA_DIR": str(tmp_path / "elsewhere"),
                 "SHOPREC_PSEUDONYM_KEY": KEY}
    process = launch.spawn([str(bentoml), "serve", "shoprec:v1", "--port", str(port)],
                           port, tmp_path / "bento.log", bento_env)
    try:
        assert _listening_hosts(port) == {"127.0.0.1"}
        bento = Server(f"http://127.0.0.1:{port}", tmp_path / "elsewhere")
        assert bento.call("/readyz", method="GET")[0] == 200
        status, served = bento.call("/metadata", method="GET")
        assert status == 200 and served["run_id"] == first["run_id"]
        assert served["uri"] == "bentoml:shoprec:v1"
        assert bento.call("/recommend", {"user_id": "C1", "k": 2})[1]["model"]["version"] == "1"
        chinese = bento.call("/recommend", {"user_id": "C1", "k": 2, "locale": "zh-CN"})[1]
        assert chinese["locale"] == "zh-CN", "the catalogs travel in the Bento"
    finally:
        launch.stop(process)
    # ... and refuses to start on every interface without a token, or without a key.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHOPREC_"))}
    public = [str(bentoml), "serve", "shoprec:v1", "--host", "0.0.0.0", "--port", str(port)]
    for env, named in ((bento_env, "SHOPREC_API_TOKEN"),
                       ({**bento_env, "SHOPREC_PSEUDONYM_KEY": ""}, "SHOPREC_PSEUDONYM_KEY")):
        refused = subprocess.run(public, env=inherited | env, capture_output=True, text=True,
                                 timeout=300)
        assert refused.returncode == 2, refused.stderr[-2000:]
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("shoprec: error:") and named in last, last
        assert launch.status(f"http://127.0.0.1:{port}/healthz") is None
    # Its image (bentoml.images.Image): every package pinned at uv.lock's version, what the
    # service imports and what that needs, no more of the project; `bentoml containerize` input.
    bento = store / "bentos/shoprec/v1"
    requirements = (bento / "env/python/requirements.txt").read_text()
    pins = [line.split(";")[0].strip() for line in requirements.splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    assert set(pinned_packages()) <= set(pins) and all("==" in pin for pin in pins), pins
    names = {pin.split("==")[0] for pin in pins}
    assert {"absl-py", "h5py", "starlette"} <= names and "apache-airflow" not in names, names
    assert "FROM " in (bento / "env/docker/Dockerfile").read_text()


def _listening_hosts(port: int) -> set[str]:
    """Addresses a TCP socket listens on at ``port``, on this machine."""
    import psutil

    return {c.laddr.ip for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_the_bento_pins_every_distribution_the_service_imports() -> None:
    imported = reached("serving.service").distributions
    assert {"tensorflow"} in imported and {"faiss-cpu"} in imported  # reaches lazy imports too
    missing = sorted({tuple(sorted(d)) for d in imported if not d & set(SERVING_PACKAGES)})
    assert not missing, f"imported by the service but not pinned in its Bento: {missing}"
