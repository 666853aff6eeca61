"""The validation window holds enough shoppers: when the latest slice of time judges fewer than
the gate's minimum, each shopper's own latest events are held out instead.

Hand-made shops: in ``crowded_late`` sixty light shoppers buy early and three heavy shoppers fill
the latest time, so the time split judges almost nobody; in ``steady`` every shopper buys
throughout, so the time split is kept.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from contracts.settings import Settings
from pipelines.data.features import (
    BATCHES,
    FeatureSet,
    build_features,
    load_features,
    per_shopper_holdout,
    save_features,
)
from pipelines.evaluation.gate_window import Window, baseline_topks, evaluate_window, load_window
from pipelines.evaluation.splits import validation_split
from pipelines.steps.baselines import train_baselines

ITEMS = 30  # the metrics rank up to 20 items
MIN_USERS = 50
START = pd.Timestamp("2026-01-01", tz="UTC")


def _catalogue() -> tuple[pd.DataFrame, pd.DataFrame]:
    items = pd.DataFrame({"item_id": [f"I{i}" for i in range(ITEMS)],
                          "title": [f"Item {i}" for i in range(ITEMS)],
                          "category": [f"c{i % 3}" for i in range(ITEMS)],
                          "brand": None, "price": 5.0})
    return items, pd.DataFrame({"user_id": [f"u{u:02d}" for u in range(70)], "country": "UK"})


def _events(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    """(shopper, item, hours since the start) as curated positives."""
    return pd.DataFrame({"event_id": [f"E{i:04d}" for i in range(len(rows))],
                         "user_id": [u for u, _, _ in rows],
                         "item_id": [f"I{i}" for _, i, _ in rows],
                         "timestamp": [START + pd.Timedelta(hours=h) for _, _, h in rows],
                         "event_type": "purchase"})


def crowded_late() -> tuple[pd.DataFrame, ...]:
    """Sixty light shoppers, three distinct items each over the first 180 hours; three heavy
    shoppers with forty events each in the latest 120 hours (the latest fifth is all theirs)."""
    light = [(f"u{u:02d}", (u + j) % ITEMS, u * 3 + j) for u in range(60) for j in range(3)]
    heavy = [(f"u{60 + h:02d}", (7 * e + h) % ITEMS, 180 + e * 3 + h) for h in range(3)
             for e in range(40)]
    return (_events(light + heavy), *_catalogue())


def steady() -> tuple[pd.DataFrame, ...]:
    """Sixty shoppers buying five distinct items each, one round of everyone per day."""
    rows = [(f"u{u:02d}", (u + day) % ITEMS, day * 24 + u * 0.1) for day in range(5)
            for u in range(60)]
    return (_events(rows), *_catalogue())


def _judged(features: FeatureSet) -> int:
    return len(validation_split(features).rows)


@pytest.fixture(scope="module")
def held_out() -> FeatureSet:
    return build_features(*crowded_late(), history_length=4, min_users=MIN_USERS)


def test_a_late_window_of_few_shoppers_becomes_a_per_shopper_holdout(held_out) -> None:
    by_time = build_features(*crowded_late(), history_length=4)
    assert by_time.split_kind == "time" and _judged(by_time) < MIN_USERS

    assert held_out.split_kind == "per_shopper"
    assert _judged(held_out) >= MIN_USERS
    first_held = held_out.valid.timestamp.min()
    assert held_out.split_time.tz_localize(None) == pd.Timestamp(first_held)
    assert held_out.window == by_time.window


def test_a_shop_with_a_full_late_window_keeps_the_time_split() -> None:
    features = build_features(*steady(), history_length=4, min_users=MIN_USERS)
    assert features.split_kind == "time" and _judged(features) >= MIN_USERS
    plain = build_features(*steady(), history_length=4)
    assert np.array_equal(features.valid.item, plain.valid.item)
    assert features.split_time == plain.split_time


def test_each_shoppers_held_out_events_are_their_latest(held_out) -> None:
    events = crowded_late()[0]
    train, valid = (pd.DataFrame({"user": part.user_key, "time": part.timestamp})
                    for part in (held_out.train, held_out.valid))
    assert len(train) + len(valid) == len(events)
    assert set(valid["user"]) == set(events["user_id"]), "every shopper has two events or more"
    last_trained = train.groupby("user")["time"].max()
    first_held = valid.groupby("user")["time"].min()
    assert (first_held >= last_trained[first_held.index]).all()
    counts = events.groupby("user_id").size()
    expected = np.maximum(1, np.floor(counts * 0.2)).astype(int)  # 1 of 3, 8 of 40
    assert valid.groupby("user").size().sort_index().tolist() == expected.sort_index().tolist()
    assert len(held_out.train_events) == len(train), "train_events: the training side's events"
    assert held_out.train_events["timestamp"].max() > held_out.split_time, \
        "per shopper, not one cut in time"
    assert set(held_out.spec.users.values[1:]) == set(events["user_id"]), "all known"


def _expected_history(events: pd.DataFrame, held_out: FeatureSet) -> dict:
    """(shopper, time) -> the shopper's items before then, most recent last, as padded ids."""
    length, out = held_out.spec.history_length, {}
    ordered = events.sort_values(["user_id", "timestamp", "event_id"])
    for user, group in ordered.groupby("user_id"):
        seq = held_out.spec.items.lookup(group["item_id"])
        for k, stamp in enumerate(group["timestamp"].dt.tz_localize(None)):
            past = seq[max(0, k - length):k]
            out[user, np.datetime64(stamp, "ns")] = np.r_[np.zeros(length - len(past)), past]
    return out


def test_histories_hold_only_the_shoppers_earlier_events(held_out) -> None:
    expected = _expected_history(crowded_late()[0], held_out)
    for part in (held_out.train, held_out.valid):
        for row in range(len(part)):
            key = (part.user_key[row], np.datetime64(part.timestamp[row], "ns"))
            assert part.history[row].tolist() == expected[key].tolist(), key
    for row in range(len(held_out.valid)):
        assert held_out.valid.item[row] not in held_out.valid.history[row], \
            "the held-out item in its own history"
    train = held_out.train
    for row in range(len(train)):  # an item only bought in the holdout never reaches training
        mine = train.user_key == train.user_key[row]
        assert set(train.history[row][train.history[row] > 0]) <= set(train.item[mine])


def test_a_shopper_with_one_event_is_never_held_out() -> None:
    events = _events([("a", 1, 0), ("b", 1, 1), ("b", 2, 2)]
                     + [("c", i, 3 + i) for i in range(10)])
    held = per_shopper_holdout(events, 0.2)
    assert held.tolist() == [False, False, True] + [False] * 8 + [True, True]


def test_the_split_kind_is_saved_and_reaches_the_evaluation(held_out, local_store: Settings,
                                                           tmp_path) -> None:
    folder = tmp_path / "features"
    uri = save_features(held_out, folder)
    (folder / BATCHES).write_text(json.dumps([{"batch": "b1", "content_hash": "h1",
                                               "status": "accepted"}]))
    assert load_features(uri).split_kind == "per_shopper"
    window = load_window(uri)
    assert window.describe()["split"] == "per_shopper" and window.users >= MIN_USERS
    floors, described = baseline_topks(local_store, window)
    evaluation = evaluate_window(window, {}, floors, [], "ndcg@10")
    assert evaluation.window["split"] == "per_shopper" and evaluation.users == window.users
    assert set(train_baselines(local_store, uri)) == {"popularity", "ease"}
    assert "λ=" in described["ease"]

    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({k: v for k, v in meta.items()
                                                  if k != "split_kind"}))
    assert load_features(uri).split_kind == "time", "a set saved before the rule: time split"
    assert Window(load_features(uri), validation_split(held_out), "h").describe()["split"] \
        == "time"


def test_leave_one_out_needs_the_time_split() -> None:
    with pytest.raises(ValueError, match="needs temporal histories"):
        build_features(*steady(), history_length=4, leave_one_out=True, min_users=MIN_USERS)


def test_the_features_step_counts_judged_shoppers_as_the_validation_split_does() -> None:
    from pipelines.data.features import _judged as counted

    for features in (build_features(*crowded_late(), min_users=MIN_USERS),
                     build_features(*crowded_late())):
        assert counted(features) == _judged(features)


def test_a_random_protocol_holds_out_a_random_share_and_never_shows_it_to_training() -> None:
    """``leave_one_out`` (a random protocol): validation is a seeded random share of the events;
    no held-out event's item is in any training history or record of its shopper, and each
    held-out event starts from its shopper's training record, as the recommender answers."""
    events, items, users = steady()
    features = build_features(events, items, users, validation_share=0.2, history_length=4,
                              leave_one_out=True)
    assert features.split_kind == "random"
    assert len(features.valid) == round(0.2 * len(events))
    train, valid = features.train, features.valid
    held = {(int(u), int(i)) for u, i in zip(valid.user, valid.item, strict=True)}
    owned = {(int(u), int(i)) for u, i in zip(train.user, train.item, strict=True)}
    for row, bag in enumerate(train.bags()):
        shown = {*bag.tolist(), *train.history[row].tolist()} - {0}
        assert not {(int(train.user[row]), i) for i in shown} & (held - owned)
    for row, bag in enumerate(valid.bags()):
        user = int(valid.user[row])
        assert set(bag.tolist()) == {i for u, i in owned if u == user}


def _pairs(part) -> list[tuple[int, int, np.datetime64]]:
    return sorted(zip(part.user.tolist(), part.item.tolist(), part.timestamp.tolist(),
                      strict=True))


def test_the_gate_slice_is_the_latest_held_out_events_and_only_the_gate_reads_it(
        tmp_path) -> None:
    """Issue 26: validation is split into a selection slice (early stopping, the grid, the deep
    weight: everything reading ``valid``) and a later gate slice that only the gate reads."""
    whole = build_features(*steady(), history_length=4)
    sliced = build_features(*steady(), history_length=4, gate_share=0.5)
    assert whole.gate is None and sliced.gate is not None
    assert _pairs(sliced.valid) + _pairs(sliced.gate) == _pairs(whole.valid), \
        "the two slices partition the held-out events"
    assert len(sliced.gate) == pytest.approx(len(whole.valid) / 2, abs=60)
    assert sliced.valid.timestamp.max() < sliced.gate.timestamp.min(), "the gate slice is later"
    assert sliced.gate_time.tz_localize(None) == pd.Timestamp(sliced.gate.timestamp.min())
    assert _pairs(sliced.train) == _pairs(whole.train), "training is untouched"

    folder = tmp_path / "features"
    uri = save_features(sliced, folder)
    (folder / BATCHES).write_text(json.dumps([{"content_hash": "h1"}]))
    loaded = load_features(uri)
    assert _pairs(loaded.gate) == _pairs(sliced.gate) and loaded.gate_time == sliced.gate_time
    window = load_window(uri)
    gate_users = {int(u) for u in sliced.gate.user}
    assert {int(r) for r in window.split.rows} <= gate_users, \
        "the gate judges shoppers of the gate slice"
    assert len(window.selection.rows) == _judged(sliced), "selection = the validation split"
    described = window.describe()
    assert described["start"] == str(sliced.gate_time)
    assert described["selection_start"] == str(sliced.split_time)


def test_the_minimum_of_shoppers_is_counted_on_the_gate_slice() -> None:
    """The fallback to a per-shopper holdout counts the shoppers a decision rests on: the gate
    slice's, not the whole window's."""
    from pipelines.data.features import _judged as counted
    from pipelines.evaluation.splits import gate_split

    sliced = build_features(*steady(), history_length=4, gate_share=0.5)
    assert counted(sliced) == len(gate_split(sliced).rows) < _judged(
        build_features(*steady(), history_length=4))
    held = build_features(*crowded_late(), history_length=4, min_users=MIN_USERS,
                          gate_share=0.5)
    assert held.split_kind == "per_shopper" and held.gate is not None
    assert counted(held) == len(gate_split(held).rows)


def test_a_per_shopper_holdout_is_sliced_per_shopper() -> None:
    """Each shopper's gate events are later than their selection events; a shopper with one
    held-out event goes whole to one slice, so both slices judge shoppers (a global time cut
    would give the gate only the few who buy late)."""
    held = build_features(*crowded_late(), history_length=4, min_users=MIN_USERS,
                          gate_share=0.5)
    assert held.split_kind == "per_shopper"
    selection, gate = ({} for _ in range(2))
    for part, seen in ((held.valid, selection), (held.gate, gate)):
        for user, moment in zip(part.user_key.tolist(), part.timestamp.tolist(), strict=True):
            seen.setdefault(user, []).append(moment)
    for user in selection.keys() & gate.keys():
        assert max(selection[user]) <= min(gate[user]), user
    assert len(selection) > 10 and len(gate) > 10
