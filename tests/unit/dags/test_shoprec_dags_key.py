"""Without a pseudonymisation key every task of the shoprec DAGs fails at once, in one line,
without retries (a retry would not set the key)."""

from __future__ import annotations

import importlib
import sys

import pytest

from tests.unit.dags.test_shoprec_dags import DAGS


def test_tasks_fail_closed_without_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.syspath_prepend(str(DAGS))
    monkeypatch.setenv("SHOPREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SHOPREC_PSEUDONYM_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("shoprec_dags", None)
    dag_file = importlib.import_module("shoprec_dags")  # parses without a key

    with pytest.raises(AirflowFailException) as failed:
        dag_file.settings()
    [line] = str(failed.value).splitlines()
    assert line.startswith("SHOPREC_PSEUDONYM_KEY is not set")
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", "test-key")
    assert dag_file.settings().require_pseudonym_key() == "test-key"
