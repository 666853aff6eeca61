"""The drift and skew report on a small curated shop with planted shifts (no training)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from contracts.model_info import ModelInfo
from contracts.settings import Settings
from contracts.traffic import traffic_folder
from pipelines.data.zones import DataDir
from pipelines.steps.drift import LATEST, MODEL_RUN_TAG, _windows, drift_report
from serving.traffic_log import TrafficLog

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CATEGORIES = ["kitchen", "lighting", "garden", "toys"]
POPULAR = (1 / np.arange(1, 41)) / (1 / np.arange(1, 41)).sum()  # I0 sells best, then I1, ...


def _curate(settings: Settings, shifted: bool) -> None:
    """40 days of events up to NOW; with ``shifted``, the last 7 days are mostly purchases of
    pricier garden items at night (a new source, a sale, a bug upstream)."""
    rng = np.random.default_rng(0)
    data = DataDir(settings.data_dir).create()
    items = pd.DataFrame({"item_id": [f"I{i}" for i in range(40)], "title": "t",
                          "category": [CATEGORIES[i % 4] for i in range(40)],
                          "price": [5.0 + i for i in range(40)], "first_seen": NOW})
    moments = pd.Timestamp(NOW) - pd.to_timedelta(rng.uniform(0, 40 * 24, 4000), unit="h")
    recent = moments > pd.Timestamp(NOW) - pd.Timedelta(days=7)
    planted = recent & shifted
    events = pd.DataFrame({
        "event_id": [f"E{i}" for i in range(4000)],
        "user_id": [f"u_{i:016x}" for i in rng.integers(0, 60, 4000)],
        "item_id": np.where(planted, [f"I{2 + 4 * i}" for i in rng.integers(0, 10, 4000)],
                            [f"I{i}" for i in rng.choice(40, 4000, p=POPULAR)]),
        "event_type": np.where(planted, "purchase",
                               rng.choice(["view", "add_to_cart", "purchase"], 4000,
                                          p=[0.7, 0.2, 0.1])),
        "quantity": 1,
        "unit_price": rng.uniform(5, 45, 4000) * np.where(planted, 3.0, 1.0),
        "timestamp": moments.where(~planted, moments.floor("D") + pd.Timedelta(hours=3)),
    })
    for table, frame in (("events", events), ("items", items)):
        folder = data.curated_partition(table, "2026-03-01")
        folder.mkdir(parents=True)
        frame.to_parquet(folder / "b1.parquet", index=False)


def _serve(settings: Settings, popular_only: bool) -> None:
    """Served answers as the endpoint logs them: always the two best sellers, or any items."""
    log = TrafficLog(traffic_folder(settings), flush_seconds=3600)
    rng = np.random.default_rng(1)
    for i in range(60):
        ids = ["I0", "I1"] if popular_only else [f"I{j}" for j in rng.choice(40, 5, False)]
        log.record(f"u_{i:016x}", "1", [{"item_id": x, "score": 1.0} for x in ids],
                   None if i % 6 else "cold_start")
    log.close()


@pytest.fixture
def shop(local_store: Settings) -> Settings:
    return local_store.with_values(drift_min_rows=20, drift_popularity_ratio_max=1.5)


def test_planted_shifts_are_breaches_with_reports_in_mlflow_and_reports(shop: Settings) -> None:
    _curate(shop, shifted=True)
    _serve(shop, popular_only=True)
    result = drift_report(shop, now=NOW)
    parts = {p.name: p for p in result.parts}
    assert "no champion yet" in result.reference
    events = parts["events"]
    assert {"event_type", "unit_price", "hour", "category"} <= set(events.drifted)
    assert events.drift_share >= 0.5
    assert parts["served"].metrics["popularity_ratio"] > shop.drift.popularity_ratio_max
    assert parts["served"].metrics["coverage"] == pytest.approx(2 / 40, abs=0.03)
    assert parts["served"].metrics["cold_start_share"] == pytest.approx(10 / 60)
    assert any(w.startswith("events:") for w in result.warnings)
    assert any("as popular as what shoppers bought" in w for w in result.warnings)
    for part in result.parts:
        assert part.html and Path(part.html).is_file() and "<html" in Path(
            part.html).read_text()[:2000].lower()
    latest = json.loads((DataDir(shop.data_dir).reports / "drift" / LATEST).read_text())
    assert latest == {"folder": result.folder, "run_id": result.run_id}
    run = MlflowClient().get_run(result.run_id)
    assert run.data.metrics["breaches"] == len(result.warnings)
    assert run.data.metrics["events.drift_share"] == pytest.approx(events.drift_share)
    logged = {a.path for a in MlflowClient().list_artifacts(result.run_id, "drift")}
    assert {"drift/events.html", "drift/served.html", "drift/summary.json"} <= logged
    summary = json.loads((Path(result.folder) / "summary.json").read_text())
    assert "u_0000000000000000" not in json.dumps(summary)  # figures, never shoppers


def test_a_steady_shop_breaches_nothing_and_small_traffic_is_not_judged(shop: Settings) -> None:
    _curate(shop, shifted=False)
    _serve(shop, popular_only=False)
    result = drift_report(shop.with_values(drift_min_rows=500), now=NOW)
    parts = {p.name: p for p in result.parts}
    assert parts["served"].html is None and "not compared" in parts["served"].note
    assert parts["events"].drift_share < 0.5, parts["events"]
    assert result.warnings == []
    assert parts["events"].metrics["unit_price.drift_score"] >= 0  # compared, not skipped
    assert mlflow.get_run(result.run_id).data.tags.get(MODEL_RUN_TAG) is None  # no champion


def test_the_champion_window_is_the_reference() -> None:
    moments = pd.Series(pd.date_range("2026-01-01", periods=10, freq="D", tz="UTC"))
    events = pd.DataFrame({"timestamp": moments})
    info = ModelInfo("shoprec", "4", "r1", "models:/shoprec/4",
                     window_start="2026-01-02 00:00:00+00:00", window_end="2026-01-05 00:00:00")
    reference, current, described = _windows(events, info, recent_days=7)
    assert reference["timestamp"].dt.day.tolist() == [2, 3, 4, 5]
    assert current["timestamp"].dt.day.tolist() == [6, 7, 8, 9, 10]
    assert described.startswith("champion v4's training window")
