"""The screen (GX's validator without a checkpoint) judges like the detailed checkpoint, with each
call's own parameters, and only failing frames reach GX's store and the Data Docs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.data.quality import BatchValidator
from pipelines.data.zones import DataDir

REPO = Path(__file__).resolve().parents[4]
DAY = pd.Timestamp("2026-01-05", tz="UTC")


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> BatchValidator:
    data = DataDir(tmp_path_factory.mktemp("quality") / "data").create()
    return BatchValidator(REPO / "expectations", data)


def _events(day: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": ["e1", "e2"], "user_id": ["u_0123456789abcdef"] * 2, "item_id": ["i1", "i2"],
        "event_type": ["view", "purchase"], "quantity": [1, 2], "unit_price": [3.0, 4.0],
        "timestamp": [day + pd.Timedelta(hours=1), day + pd.Timedelta(hours=2)],
        "order_id": [None, "o1"], "rating": [None, None],
        "unknown_item_id": [None, None], "unseen_item_id": [None, None],
    })


def _parameters(day: pd.Timestamp) -> dict:
    return {"window_start": day, "window_end": day + pd.Timedelta(days=1),
            "now": pd.Timestamp.now(tz="UTC"), "price_max": None, "quantity_max": None,
            "min_rows": 0, "seen_items_mostly": 0.0}


def test_each_call_uses_its_own_parameters(validator):
    """GX substitutes parameters into the configurations in place: a reused suite must not keep
    the first batch's window."""
    later = DAY + pd.Timedelta(days=3)
    assert validator.validate("b1", {"events": _events(DAY)}, _parameters(DAY)).passed
    assert validator.validate("b2", {"events": _events(later)}, _parameters(later)).passed
    outside = validator.validate("b3", {"events": _events(DAY)}, _parameters(later))
    assert [f.label for f in outside.critical] == [
        "events.timestamp: expect_column_values_to_be_between"]
    assert outside.critical[0].unexpected_count == 2  # the detailed run's counts


def test_a_passing_frame_is_screened_only_and_gets_no_data_docs(validator):
    outcome = validator.validate("b4", {"events": _events(DAY)}, _parameters(DAY))
    assert outcome.passed and len(outcome.ids) == 1 and outcome.detailed_ids == []
    assert "b4" in outcome.ids[0]  # the run name: lineage still names the batch
    assert validator.build_docs(outcome) is None


def test_a_failing_frame_is_detailed_and_rendered(validator):
    frame = _events(DAY).assign(event_type=["click", "view"])
    outcome = validator.validate("b5", {"events": frame}, _parameters(DAY))
    assert outcome.critical[0].examples == ["click"] and len(outcome.detailed_ids) == 1
    docs = validator.build_docs(outcome)
    assert docs is not None and Path(docs).is_file()
