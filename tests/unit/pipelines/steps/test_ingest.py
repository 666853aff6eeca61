"""The pipeline's step functions without Airflow: landing is idempotent, routing says why, and a
saved feature set loads back identical."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipelines.data.features import build_features, load_features, save_features
from pipelines.data.landing import land
from pipelines.data.synthetic_shop import ShopSpec, generate_shop
from pipelines.data.zones import DataDir
from pipelines.steps.ingest import report_quarantined, route
from tests.support.tiny import tiny_shop


def test_land_copies_new_batches_once_and_skips_recorded_ones(tmp_path, settings) -> None:
    generate_shop(tmp_path / "inbox", ShopSpec(days=3, users=20, items=20))
    settings = settings.with_values(inbox_dir=tmp_path / "inbox")

    first = land(settings)
    again = land(settings)  # not validated yet: still pending, nothing copied twice
    data = DataDir(settings.data_dir)
    (data.manifests / "x.json").write_text(json.dumps(
        {"batch": first[0].name, "content_hash": "x", "status": "accepted",
         "ingested_at": "2026-01-01T00:00:00+00:00"}))

    assert [p.name for p in first] == [p.name for p in again]
    assert len(first) == 5, "catalogue, customers and three days"
    assert sum(1 for p in data.landing.rglob("*.csv")) == 5
    assert first[0] not in land(settings), "a batch with a manifest is not pending any more"
    assert (data.reference / "ground_truth.json").is_file()


def test_route_trains_on_accepted_data_and_reports_the_quarantined() -> None:
    bad = {"batch": "b2", "status": "quarantined", "reason": "truncated", "report": "b2.md"}
    batches = [{"batch": "b1", "status": "accepted", "reason": None, "report": "b1.md"}, bad]

    mixed, nothing, forced = route(batches), route([bad]), route([], force_train=True)

    assert mixed.train and mixed.accepted == ["b1"] and "1 batch(es) quarantined" in mixed.reason
    assert not nothing.train and nothing.reason.startswith("no new batches accepted")
    assert forced.train and "force_train" in forced.reason
    assert report_quarantined(batches) == [{k: bad[k] for k in ("batch", "reason", "report")}]


def test_saved_feature_set_loads_back_identical(tmp_path) -> None:
    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=4)

    loaded = load_features(save_features(features, tmp_path / "features"))

    assert loaded.spec == features.spec and loaded.split_time == features.split_time
    for name in ("train", "valid"):
        for field in ("user", "item", "history", "timestamp", "user_key"):
            np.testing.assert_array_equal(getattr(getattr(loaded, name), field),
                                          getattr(getattr(features, name), field))
    np.testing.assert_array_equal(loaded.table.title, features.table.title)
    pd.testing.assert_frame_equal(loaded.train_events.reset_index(drop=True),
                                  features.train_events.reset_index(drop=True))
