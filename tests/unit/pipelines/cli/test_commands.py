"""The CLI contract later checks rely on: JSON lines per batch and exit codes 0, 2 and 3."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from contracts.settings import get_settings
from pipelines.cli import main
from tests.support.shopfiles import event_rows, write_catalogue, write_events

SHOPREC = str(Path(sys.executable).with_name("shoprec"))  # beside the Python running the tests
KEY = "test-key"


def _run(*args: str, data_dir: Path, key: str | None = KEY,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``shoprec`` in a clean environment: nothing inherited but what is named here."""
    return subprocess.run(
        [SHOPREC, *args], capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "SHOPREC_DATA_DIR": str(data_dir),
             "GX_ANALYTICS_ENABLED": "false", "HOME": str(data_dir.parent)}
        | ({"SHOPREC_PSEUDONYM_KEY": key} if key is not None else {}) | (env or {}),
        cwd=data_dir.parent if data_dir.parent.is_dir() else None,
    )


def test_ingest_json_lines_and_exit_codes(tmp_path: Path) -> None:
    shop = write_catalogue(tmp_path / "shop")
    write_events(shop / "events", "2026-01-01", event_rows("2026-01-01"))
    data_dir = tmp_path / "data"

    first = _run("ingest", str(shop), "--source", "synthetic", "--json", data_dir=data_dir)

    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert [r["status"] for r in lines] == ["accepted"] * 3
    for record in lines:
        assert {"batch", "status", "rows_in", "rows_accepted", "rows_rejected",
                "failed_expectations", "reason", "report"} <= record.keys()
        assert record["rows_in"] == record["rows_accepted"] + record["rows_rejected"]

    (shop / "events" / "2026-01-02.csv").write_text("")
    second = _run("ingest", str(shop), "--source", "synthetic", "--json", data_dir=data_dir)

    assert second.returncode == 3
    statuses = [json.loads(line)["status"] for line in second.stdout.splitlines()]
    assert statuses == ["duplicate", "duplicate", "duplicate", "quarantined"]


def test_data_dir_flag_overrides_settings(tmp_path: Path) -> None:
    shop = write_catalogue(tmp_path / "shop")
    result = _run("ingest", str(shop / "items.csv"), "--source", "synthetic", "--data-dir",
                  str(tmp_path / "elsewhere"), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere" / "curated" / "items").is_dir()
    assert not (tmp_path / "data").exists()


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    unknown = _run("ingest", str(tmp_path), "--source", "nosuch", data_dir=tmp_path / "d")
    missing = _run("ingest", str(tmp_path / "absent"), "--source", "synthetic",
                   data_dir=tmp_path / "d")
    no_mapping = _run("ingest", str(tmp_path), "--source", "csv", data_dir=tmp_path / "d")

    for result, words in ((unknown, "nosuch"), (missing, "absent"), (no_mapping, "--mapping")):
        assert result.returncode == 2
        assert words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_score_without_a_store_says_so_and_writes_nothing_there(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = _run("score", "--out", str(tmp_path / "out" / "s.parquet"), data_dir=data_dir)

    assert result.returncode == 2 and "no champion" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(data_dir.iterdir()) == [], "a read-only command created no MLflow store"


@pytest.mark.parametrize("key", [None, ""])
def test_no_pseudonymisation_key_stops_ingest_train_and_serve(tmp_path: Path,
                                                              key: str | None) -> None:
    shop = write_catalogue(tmp_path / "shop")
    data_dir = tmp_path / "data"
    (data_dir / "curated" / "events").mkdir(parents=True)  # train would otherwise stop earlier
    runs = [_run("ingest", str(shop), "--source", "synthetic", data_dir=data_dir, key=key),
            _run("train", data_dir=data_dir, key=key),
            _run("serve", "--port", "1", data_dir=data_dir, key=key)]
    for run in runs:
        assert run.returncode == 2, run.stderr
        [line] = run.stderr.strip().splitlines()
        assert line.startswith("shoprec: error: SHOPREC_PSEUDONYM_KEY is not set"), line
        assert run.stdout == ""
    assert not (data_dir / "landing").exists() and not (data_dir / "batches").exists(), \
        "nothing ingested"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_serve_on_a_public_address_without_a_token_exits_2_naming_it(tmp_path: Path,
                                                                     host: str) -> None:
    run = _run("serve", "--host", host, "--port", "1", data_dir=tmp_path / "data")
    assert run.returncode == 2, run.stderr
    [line] = run.stderr.strip().splitlines()
    assert "SHOPREC_API_TOKEN" in line and host in line and "--insecure" in line
    assert "listening" not in run.stdout, "no server started"
    blank = _run("serve", "--host", host, "--port", "1", data_dir=tmp_path / "data",
                 env={"SHOPREC_API_TOKEN": ""})
    assert blank.returncode == 2 and "SHOPREC_API_TOKEN" in blank.stderr, "an empty token is none"


# --- train: the DAG's settings, config and grid ---------------------------------------------

RESULT = SimpleNamespace(
    run_id="r1", model_uri="runs:/r1/model", metrics={"ndcg@10": 0.3}, train_seconds=2.0,
    baselines={"popularity": {"ndcg@10": 0.1}, "ease": {"ndcg@10": 0.2}}, gate=None,
)


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """``shoprec train`` in process, with the SHOPREC_* training settings a DAG would see and
    ``pipelines.steps.train`` replaced by a recorder (no TensorFlow, no MLflow): what it was
    given."""
    monkeypatch.chdir(tmp_path)
    for name in ("SHOPREC_CONFIG", "SHOPREC_DATA_DIR", "SHOPREC_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOPREC_TRAIN_CONFIG", json.dumps({"dim": 16, "retrieval_epochs": 5}))
    monkeypatch.setenv("SHOPREC_TRAIN_GRID", json.dumps([{}, {"dim": 8}]))
    monkeypatch.setenv("SHOPREC_DATASET", "from-settings")
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", KEY)
    calls: dict = {}

    def train(settings, data_dir=None, config=None, dataset=None, register=True, progress=None):
        calls.update(settings=settings, data_dir=data_dir, config=config, dataset=dataset,
                     register=register)
        return SimpleNamespace(**vars(RESULT), to_json=lambda: {"run_id": RESULT.run_id})

    monkeypatch.setitem(sys.modules, "pipelines.steps.train", SimpleNamespace(train=train))
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def test_train_trains_the_settings_grid_with_flags_over_train_config(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "curated" / "events").mkdir(parents=True)

    code = main(["train", "--data-dir", str(data_dir), "--retrieval-epochs", "1",
                 "--ranking-epochs", "2", "--no-register"])

    assert code == 0
    settings = trained["settings"]
    assert settings.train_config == {"dim": 16, "retrieval_epochs": 1, "ranking_epochs": 2}
    assert settings.train_grid == [{}, {"dim": 8}], "one candidate per grid entry, as the DAG"
    assert settings.data_dir == data_dir and trained["config"] is None
    assert trained["dataset"] is None and settings.dataset == "from-settings"
    assert trained["register"] is False
    assert capsys.readouterr().out.splitlines() == [
        "run r1: ndcg@10 0.3000 (popularity 0.1000, EASE 0.2000); model runs:/r1/model"]


def test_train_flags_absent_leave_train_config_and_dataset_flag_wins(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "curated" / "events").mkdir(parents=True)

    code = main(["train", "--data-dir", str(data_dir), "--dataset", "mine", "--json"])

    assert code == 0
    assert trained["settings"].train_config == {"dim": 16, "retrieval_epochs": 5}
    assert trained["dataset"] == "mine" and trained["register"] is True
    assert json.loads(capsys.readouterr().out) == {"run_id": "r1"}


def test_train_without_curated_events_is_a_usage_error(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "run `shoprec ingest` first" in capsys.readouterr().err
    assert trained == {}, "nothing trained"


@pytest.mark.parametrize("argv,words", [
    (["benchmark", "--json"], "--dataset"),
    (["benchmark", "--dataset", "ml-100k", "--protocol", "random"], "--dataset"),
    (["benchmark", "--protocol", "random"], "--data-dir"),
])
def test_benchmark_needs_a_dataset_or_a_protocol_on_a_data_dir(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_benchmark_on_an_ingested_data_dir_passes_protocol_and_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipelines.evaluation.benchmark

    assert main(["benchmark", "--protocol", "random", "--data-dir", str(tmp_path)]) == 2
    assert "shoprec ingest" in capsys.readouterr().err, "nothing ingested there yet"
    (tmp_path / "curated" / "events").mkdir(parents=True)
    calls = []
    monkeypatch.setattr(pipelines.evaluation.benchmark, "benchmark",
                        lambda *args, progress: calls.append(args) or {"model": {"ndcg@10": 0.5}})

    assert main(["benchmark", "--protocol", "temporal", "--data-dir", str(tmp_path),
                 "--seed", "7", "--json"]) == 0
    assert calls == [(None, tmp_path, "temporal", 7)]
    assert json.loads(capsys.readouterr().out) == {"model": {"ndcg@10": 0.5}}


def test_version_and_generate_help_say_what_a_newcomer_needs(tmp_path: Path) -> None:
    from importlib.metadata import version

    shown = _run("--version", data_dir=tmp_path / "data")
    assert shown.returncode == 0 and shown.stdout.strip() == f"shoprec {version('shoprec')}"
    help_text = _run("generate", "--help", data_dir=tmp_path / "data").stdout
    for flag, default in (("--days", "30"), ("--seed", "7"), ("--users", "500"),
                          ("--items", "400"), ("--start", "2026-01-01")):
        lines = help_text.splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(flag))
        assert f"default {default}" in " ".join(lines[at:at + 2]), lines[at:at + 2]
