"""The features step builds one feature set per data version: a re-run reuses it, a new
accepted batch makes a new one, a quarantined batch changes nothing.

The tiny shop is written straight into the curated zone with hand-written manifests (what an
accepted ingest leaves behind), so the test needs no validation run.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from contracts.settings import Settings
from pipelines.data import features as features_module
from pipelines.data.features import BATCHES, features_path, lineage, load_features
from pipelines.data.zones import DataDir, write_json_atomic
from pipelines.evaluation.splits import gate_split
from pipelines.steps import features as features_step
from pipelines.steps.features import build_features_step
from pipelines.tracking.runs import data_hash
from tests.support.tiny import tiny_shop
from tests.unit.pipelines.data.test_features import crowded_late

HISTORY = 4


def _curate(data: DataDir, batch: str, tables: dict[str, pd.DataFrame],
            status: str = "accepted") -> str:
    """One batch's curated partitions and its manifest (written last, as ingestion does)."""
    day = batch.split("_")[-1]
    for table, frame in tables.items():
        folder = data.curated_partition(table, day)
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / f"{batch}.parquet", index=False)
    content_hash = f"hash-{batch}"
    write_json_atomic(data.manifest_path(content_hash), {
        "batch": batch, "content_hash": content_hash, "status": status,
        "ingested_at": f"{day}T12:00:00+00:00"})
    return content_hash


@pytest.fixture
def shop(settings: Settings) -> tuple[DataDir, pd.DataFrame]:
    events, items, users = tiny_shop()
    events = events.assign(event_type="purchase")
    data = DataDir(settings.data_dir)
    _curate(data, "catalogue_2026-01-01", {"items": items, "users": users})
    _curate(data, "events_2026-01-02", {"events": events.iloc[:100]})
    _curate(data, "events_2026-01-03", {"events": events.iloc[100:160]})
    return data, events


def test_same_batches_reuse_the_feature_set(shop, settings: Settings, monkeypatch) -> None:
    data, _ = shop
    config = settings.with_values(train_config={"history_length": HISTORY})

    first = build_features_step(config)  # the history length comes from train_config
    monkeypatch.setattr(features_module, "build_features",
                        lambda *a, **k: pytest.fail("rebuilt a feature set for the same data"))
    again = build_features_step(settings, history_length=HISTORY)

    assert again == first
    assert features_path(first).name.endswith(
        f"-h{HISTORY}-u{settings.gate.min_users}-g{settings.gate.slice_share:g}"
        f"-s{features_module.SPLIT_RULE}")
    assert [p.name for p in data.features.iterdir()] == [features_path(first).name]
    batches, version = lineage(first)
    hashes = {m["content_hash"] for m in data.read_manifests()}
    assert {m["content_hash"] for m in batches} == hashes
    assert version == data_hash(sorted(hashes))
    assert json.loads((features_path(first) / BATCHES).read_text()) == batches


def test_a_new_accepted_batch_builds_a_new_feature_set(shop, settings: Settings) -> None:
    data, events = shop
    before = build_features_step(settings, history_length=HISTORY)

    _curate(data, "events_2026-01-04", {"events": events.iloc[160:]}, status="quarantined")
    unchanged = build_features_step(settings, history_length=HISTORY)
    added = _curate(data, "events_2026-01-05", {"events": events.iloc[160:]})
    after = build_features_step(settings, history_length=HISTORY)

    assert unchanged == before, "a quarantined batch is not part of the data"
    assert after != before
    assert sorted(p.name for p in data.features.iterdir()) == sorted(
        features_path(uri).name for uri in (before, after)), "the older set stays usable"
    assert added in {m["content_hash"] for m in lineage(after)[0]}
    assert added not in {m["content_hash"] for m in lineage(before)[0]}


def test_other_history_length_is_another_feature_set(shop, settings: Settings) -> None:
    assert (build_features_step(settings, history_length=HISTORY)
            != build_features_step(settings, history_length=HISTORY + 1))


def test_the_gate_minimum_shapes_the_window_and_names_the_set(
    shop, settings: Settings, monkeypatch
) -> None:
    real, asked = features_step.build_features, []
    monkeypatch.setattr(features_step, "build_features",
                        lambda *a, **k: asked.append(k["min_users"]) or real(*a, **k))
    fewer = settings.with_values(gate_min_users=5)

    default, lowered = (build_features_step(s, history_length=HISTORY) for s in (settings, fewer))

    assert asked == [settings.gate.min_users, 5], "the step passes gate_min_users"
    assert default != lowered, "another minimum may cut another window: another feature set"


def test_a_late_window_too_thin_for_the_gate_is_held_out_per_shopper(settings: Settings) -> None:
    events, items, users = crowded_late()
    data = DataDir(settings.data_dir)
    _curate(data, "catalogue_2026-01-01", {"items": items, "users": users})
    _curate(data, "events_2026-01-02", {"events": events})

    judged = load_features(build_features_step(settings, history_length=HISTORY))
    anyway = load_features(build_features_step(
        settings.with_values(gate_min_users=3, gate_slice_share=0), history_length=HISTORY))

    assert judged.split_kind == "per_shopper", "3 shoppers in the latest fifth of time"
    # Each of the 63 shoppers has one held-out event (most of them): each goes whole to one
    # slice by a hash of the shopper, so the gate judges about half of them, not just the
    # three heavy shoppers a time cut would leave it.
    assert 20 <= len(gate_split(judged).rows) <= 45
    assert anyway.split_kind == "time", "enough for a minimum of 3 without a gate slice"


def test_no_accepted_batch_is_an_error(settings: Settings) -> None:
    with pytest.raises(ValueError, match="no accepted batches"):
        build_features_step(settings, history_length=HISTORY)
