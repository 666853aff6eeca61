"""Code tests of the settings object: defaults, environment, settings file, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.settings import DEV_PSEUDONYM_KEY, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SHOPREC_DATA_DIR", "SHOPREC_CONFIG", "SHOPREC_SERVE_PORT", "MLFLOW_TRACKING_URI",
                 "SHOPREC_TRACKING_URI", "SHOPREC_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_embedded_and_local(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.serve_host == "127.0.0.1"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
    assert settings.pseudonym_key.get_secret_value() == DEV_PSEUDONYM_KEY
    assert DEV_PSEUDONYM_KEY not in repr(settings), "secrets stay out of logs"


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "shoprec.toml").write_text('serve_port = 4000\ndata_dir = "/srv/shop"\n')
    monkeypatch.setenv("SHOPREC_SERVE_PORT", "5001")

    settings = Settings()

    assert settings.serve_port == 5001
    assert settings.data_dir == Path("/srv/shop")


def test_named_yaml_file_and_mlflow_variable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    config = tmp_path / "prod.yaml"
    config.write_text("shoprec:\n  data_docs: all\n  history_batches: 3\n")
    monkeypatch.setenv("SHOPREC_CONFIG", str(config))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")

    settings = Settings()

    assert (settings.data_docs, settings.history_batches) == ("all", 3)
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5999"


def test_missing_named_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_CONFIG", "/nonexistent/shoprec.toml")
    with pytest.raises(FileNotFoundError, match="SHOPREC_CONFIG"):
        Settings()


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_DATA_DOCS", "sometimes")
    with pytest.raises(ValueError, match="data_docs"):
        Settings()


def test_ease_lambda_is_a_positive_number(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().ease_lambda == 100.0
    monkeypatch.setenv("SHOPREC_EASE_LAMBDA", "250")
    assert Settings().ease_lambda == 250.0
    monkeypatch.setenv("SHOPREC_EASE_LAMBDA", "0")
    with pytest.raises(ValueError, match="ease_lambda"):
        Settings()
