"""The CLI contract later checks rely on: JSON lines per batch and exit codes 0, 2 and 3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import REPO
from tests.data.shopfiles import event_rows, write_catalogue, write_events

SHOPREC = str(REPO / ".venv" / "bin" / "shoprec")


def _run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPREC, *args], capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "SHOPREC_DATA_DIR": str(data_dir),
             "GX_ANALYTICS_ENABLED": "false", "HOME": str(data_dir.parent)},
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
