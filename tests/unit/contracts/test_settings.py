"""Code tests of the settings object: defaults, environment, settings file, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.settings import MissingPseudonymKey, Settings, is_loopback


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SHOPREC_DATA_DIR", "SHOPREC_CONFIG", "SHOPREC_SERVE_PORT", "MLFLOW_TRACKING_URI",
                 "SHOPREC_TRACKING_URI", "SHOPREC_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_embedded_and_local(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.serve.host == "127.0.0.1"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
    assert settings.pseudonym_key is None, "no published development key as a default"
    assert settings.feedback_max_age_hours == 168.0 and settings.serve.insecure is False


def test_a_missing_or_blank_key_fails_closed_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for settings in (Settings(), Settings(pseudonym_key=""), Settings(pseudonym_key="  ")):
        with pytest.raises(MissingPseudonymKey) as caught:
            settings.require_pseudonym_key()
        message = str(caught.value)
        assert "SHOPREC_PSEUDONYM_KEY" in message and "\n" not in message
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", "from-the-environment")
    settings = Settings()
    assert settings.require_pseudonym_key() == "from-the-environment"
    assert "from-the-environment" not in repr(settings), "secrets stay out of logs"


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
    ("shop.example.com", False), ("", False),
])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_address_needs_a_token_or_an_explicit_insecure() -> None:
    bare = Settings(pseudonym_key="k")
    assert bare.open_access_problem("127.0.0.1") is None
    problem = bare.open_access_problem("0.0.0.0")
    assert problem and "SHOPREC_API_TOKEN" in problem and "--insecure" in problem
    assert Settings(pseudonym_key="k", api_token="t").open_access_problem("0.0.0.0") is None
    assert Settings(pseudonym_key="k", api_token=" ").open_access_problem("0.0.0.0")
    assert Settings(pseudonym_key="k", serve_insecure=True).open_access_problem("::") is None


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "shoprec.toml").write_text('serve_port = 4000\ndata_dir = "/srv/shop"\n')
    monkeypatch.setenv("SHOPREC_SERVE_PORT", "5001")

    settings = Settings()

    assert settings.serve.port == 5001
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
    assert Settings().ease.lambda_ == 100.0
    monkeypatch.setenv("SHOPREC_EASE_LAMBDA", "250")
    assert Settings().ease.lambda_ == 250.0
    monkeypatch.setenv("SHOPREC_EASE_LAMBDA", "0")
    with pytest.raises(ValueError, match="ease.lambda"):
        Settings()


def test_groups_keep_the_flat_environment_names(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """``SHOPREC_GATE_MIN_USERS`` is ``settings.gate.min_users``; the settings file takes the
    flat key or a group table, and the environment still wins over the file."""
    (tmp_path / "shoprec.toml").write_text(
        'gate_min_users = 9\nrollout_max_p95_ratio = 4.0\n[gate]\nmetric = "recall@10"\n'
        'margin = 0.2\n')
    monkeypatch.setenv("SHOPREC_GATE_MARGIN", "0.05")
    monkeypatch.setenv("SHOPREC_EASE_LAMBDA", "300")
    monkeypatch.setenv("SHOPREC_DRIFT_BLOCKS_PROMOTION", "true")

    settings = Settings(serve_insecure=True)

    assert (settings.gate.min_users, settings.gate.metric, settings.gate.margin) == (
        9, "recall@10", 0.05)
    assert settings.rollout.max_p95_ratio == 4.0 and settings.ease.lambda_ == 300.0
    assert settings.drift.blocks_promotion is True and settings.serve.insecure is True
    assert settings.rollout.max_p99_ratio == 2.0, "the rest of a group keeps its defaults"


def test_with_values_validates_and_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    base = Settings(gate_margin=0.1, data_dir="/srv/a")
    changed = base.with_values(gate_min_users=3, ease_lambda=7.5, data_dir="/srv/b")

    assert (changed.gate.min_users, changed.gate.margin) == (3, 0.1)
    assert changed.ease.lambda_ == 7.5 and changed.data_dir == Path("/srv/b")
    assert (base.gate.min_users, base.data_dir) == (50, Path("/srv/a")), "a copy"
    monkeypatch.setenv("SHOPREC_GATE_MIN_USERS", "99")
    assert base.with_values(model_name="x").gate.min_users == 50, "the copy, not the environment"
    with pytest.raises(ValueError, match="min_users"):
        base.with_values(gate_min_users=0)


def test_a_copy_keeps_an_object_store_data_dir() -> None:
    """``with_values`` once dumped an ``s3://`` data dir to a dict and built a local folder named
    after that dict: every copy of the settings then wrote beside the code, not to the store."""
    settings = Settings(data_dir="s3://shoprec-test/x", pseudonym_key="k" * 20)
    copy = settings.with_values(gate_min_users=3)
    assert str(copy.data_dir) == "s3://shoprec-test/x" and copy.gate.min_users == 3
