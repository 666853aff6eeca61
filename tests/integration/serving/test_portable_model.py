"""The registered champion loads where MLflow users load it: a fresh virtual environment built by
uv from the model's own ``requirements.txt`` (the package registry only, no project checkout on
``sys.path``), where ``mlflow.pyfunc.load_model(...).predict`` gives the top-k the real endpoint
serves over HTTP for the same shoppers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from contracts import registry
from contracts.pseudonyms import Pseudonymiser
from tests.support.champion import RAW_USERS
from tests.support.endpoint import KEY, Server, serve_own_state, settings_for

# Minutes: a fresh environment from the package registry (make test-long; CI).
pytestmark = pytest.mark.long

K = 5
# Loads the model by its folder, prints each shopper's items best first as JSON; run with -I
# (isolated: no PYTHONPATH, no script folder or cwd on sys.path), so only the venv and the
# model's own code/ folder can provide an import.
PREDICT = """
import json, sys
import mlflow.pyfunc, pandas as pd
users, k = json.loads(sys.argv[2]), int(sys.argv[3])
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"user_id": users, "k": [k] * len(users)}))
import contracts.pyfunc, models
print(json.dumps({"code": [contracts.pyfunc.__file__, models.__file__],
                  "items": {u: out[out["user_id"] == u].sort_values("rank")["item_id"].tolist()
                            for u in users}}))
"""


def _registry_reachable() -> str | None:
    """None when uv's package index answers; else why not (uv's own settings name it)."""
    index = (os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")
             or "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/pip/", timeout=15):
            return None
    except urllib.error.HTTPError as err:
        return None if err.code < 500 else f"{index} answered {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"{index} is unreachable ({getattr(err, 'reason', err)})"


@pytest.fixture(scope="module")
def own_server(champion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The endpoint on the champion as trained (the shared server's state moves)."""
    yield from serve_own_state(champion_dir, tmp_path_factory.mktemp("portable") / "data")


def test_the_champion_loads_in_a_fresh_environment_and_answers_as_the_endpoint(
    champion_dir: Path, own_server: Server, tmp_path: Path,
) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH: the fresh environment is built with uv")
    unreachable = _registry_reachable()
    if unreachable is not None:
        pytest.skip(f"the package registry is needed for a fresh environment: {unreachable}")
    settings = settings_for(champion_dir)
    registry.configure(settings)
    model = Path(mlflow.artifacts.download_artifacts(
        f"models:/{settings.model_name}@{registry.CHAMPION}", dst_path=str(tmp_path / "model")))
    requirements = (model / "requirements.txt").read_text().split()
    assert not any(r.startswith("shoprec") for r in requirements), requirements
    assert "tensorflow-recommenders" in {r.split("==")[0] for r in requirements}

    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    # Packages only: the interpreter running the tests, never one uv would download.
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TF_USE_LEGACY_KERAS")
             and not k.startswith(("MLFLOW_", "SHOPREC_"))} | {"UV_PYTHON_DOWNLOADS": "never"}
    for command in ([uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
                    [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                     "-r", str(model / "requirements.txt")]):
        built = subprocess.run(command, cwd=work, env=clean, capture_output=True, text=True,
                               timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]

    users = [Pseudonymiser(KEY).one(raw) for raw in RAW_USERS]
    run = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", PREDICT, str(model),
                          json.dumps(users), str(K)], cwd=work, env=clean, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    fresh = json.loads(run.stdout.strip().splitlines()[-1])

    assert all(Path(f).parts[-3] == "code" for f in fresh["code"]), fresh["code"]
    for raw, user in zip(RAW_USERS, users, strict=True):
        status, page = own_server.call("/recommend", {"user_id": raw, "k": K, "explain": False})
        assert status == 200 and page["fallback"] is None, page
        assert fresh["items"][user] == [i["item_id"] for i in page["items"]], raw
