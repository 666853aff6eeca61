"""Who may start the endpoint where: a public address needs a token (or an explicit
``--insecure``), and the model it serves is read from bundle files, never unpickled."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from contracts import launch
from contracts.pseudonyms import Pseudonymiser
from tests.support.endpoint import KEY, Server, server_env

TOKEN = "access-test-token"


def _serve_on_all_interfaces(data_dir: Path, log: Path, env: dict[str, str],
                             *flags: str) -> tuple[object, Server]:
    port = launch.free_port()
    shoprec = Path(sys.executable).with_name("shoprec")
    process = launch.spawn([str(shoprec), "serve", "--host", "0.0.0.0", "--port", str(port),
                            "--data-dir", str(data_dir), *flags], port, log, env)
    return process, Server(f"http://127.0.0.1:{port}", data_dir, env.get("SHOPREC_API_TOKEN"))


def test_serve_on_all_interfaces_with_a_token_serves_and_guards(champion_dir: Path,
                                                                tmp_path: Path) -> None:
    process, server = _serve_on_all_interfaces(champion_dir, tmp_path / "serve.log",
                                               server_env(champion_dir, TOKEN))
    try:
        status, answer = server.call("/recommend", {"user_id": "C1", "k": 2})
        assert status == 200 and answer["items"], answer
        assert server.call("/recommend", {"user_id": "C1"}, token=None)[0] == 401
        assert server.call("/admin/reload", token="wrong")[0] == 401
        assert server.call("/readyz", method="GET", token=None)[0] == 200
    finally:
        launch.stop(process)
    assert "without an API token" not in (tmp_path / "serve.log").read_text()


def test_insecure_flag_serves_without_a_token_and_warns(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = server_env(data_dir) | {"SHOPREC_API_TOKEN": ""}
    process, server = _serve_on_all_interfaces(data_dir, tmp_path / "serve.log", env,
                                               "--insecure")
    try:
        status, body = server.call("/recommend", {"user_id": "C1"}, token=None)
        assert status == 503 and body == {"detail": "no champion model yet"}, "open, no model"
    finally:
        launch.stop(process)
    log = (tmp_path / "serve.log").read_text()
    assert "WARNING: listening on 0.0.0.0 without an API token" in log


def test_the_endpoint_loads_bundle_files_and_never_runs_the_registry_model_code(
    champion_dir: Path, tmp_path: Path
) -> None:
    import mlflow

    from contracts import registry
    from contracts.model_info import ModelInfo
    from serving.loading import load_engine
    from tests.support.endpoint import settings_for

    settings = settings_for(champion_dir)
    registry.configure(settings)
    model = Path(mlflow.artifacts.download_artifacts("models:/shoprec/1", dst_path=tmp_path))
    marker = tmp_path / "planted-code-ran"
    [code] = model.glob("*.py")  # the pyfunc as MLflow "models from code" runs it to load
    with code.open("a", encoding="utf-8") as planted:  # a stand-in for code planted there
        planted.write(f"\n__import__('pathlib').Path({str(marker)!r}).touch()\n")
    with contextlib.suppress(Exception):  # the control: MLflow's own loader runs it
        mlflow.pyfunc.load_model(str(model))
    assert marker.exists(), "the planted code runs when MLflow loads the model"
    marker.unlink()

    engine = load_engine(settings, ModelInfo(name="shoprec", version="1", run_id=None,
                                             uri=str(model)))

    assert not marker.exists(), "the endpoint ran none of the registry model's code"
    assert engine.rec.is_known(engine.pseudonymiser.one("C1"))
    assert engine.pseudonymiser.one("C1") == Pseudonymiser(KEY).one("C1")


def test_a_bundle_path_leaving_the_model_folder_is_refused(tmp_path: Path) -> None:
    from contracts.pyfunc import bundle_folder

    (tmp_path / "model").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "model" / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      bundle:\n        path: ../outside\n")
    with pytest.raises(ValueError, match="leaves its folder"):
        bundle_folder(tmp_path / "model")
