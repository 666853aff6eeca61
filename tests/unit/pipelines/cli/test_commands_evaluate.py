"""``shoprec evaluate``: usage errors in one line with exit 2, before anything heavy loads.

The JSON contract on a real champion is checked end to end in
``tests/integration/test_pipeline_run.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import EXIT_USAGE, main


@pytest.fixture(autouse=True)
def _local(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SHOPREC_TRACKING_URI",
                 "SHOPREC_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The error line (MLflow may log its store's creation above it): no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("shoprec: error:"), err
    return last


def test_no_curated_data_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", "--data-dir", str(tmp_path / "empty"), "--json"]) == EXIT_USAGE
    assert "no curated events" in _one_line_error(capsys)


def test_nothing_to_score_is_a_usage_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "curated" / "events").mkdir(parents=True)
    assert main(["evaluate", "--data-dir", str(tmp_path), "--json"]) == EXIT_USAGE
    assert "neither a champion nor a challenger" in _one_line_error(capsys)
    assert main(["evaluate", "--data-dir", str(tmp_path), "--model-uri", "models:/x/1"]) \
        == EXIT_USAGE
    assert "no accepted batches" in _one_line_error(capsys)


def test_a_model_uri_flag_without_a_value_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--model-uri"])
    assert exited.value.code == EXIT_USAGE
    assert "--model-uri" in _one_line_error(capsys)
