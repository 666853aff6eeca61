"""The running endpoint answers from the online shopper store: a purchase sent as feedback is left
out of the shopper's next answer at once, a shopper first seen after training is answered
personally, and a batch another process applies is read without a restart."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from contracts.pseudonyms import Pseudonymiser
from contracts.shopper_store import SQLITE_FILE, open_store
from serving.shoppers import newer_than
from tests.support.endpoint import KEY, Server


def _items(page: dict) -> list[str]:
    return [i["item_id"] for i in page["items"]]


def test_feedback_purchases_make_a_new_shopper_known_and_are_not_offered_back(
        server: Server) -> None:
    shopper = "S-NEW-1"
    status, cold = server.call("/recommend", {"user_id": shopper, "k": 4})
    assert status == 200 and cold["fallback"] == "cold_start"
    bought = ["I2", "I4"]
    for item in bought:
        status, answer = server.call("/feedback", {"user_id": shopper, "item_id": item,
                                                   "event_type": "purchase"})
        assert status == 200, answer

    status, page = server.call("/recommend", {"user_id": shopper, "k": 6})

    assert status == 200 and page["fallback"] is None, "personal: the store knows them now"
    assert not set(_items(page)) & set(bought), "what they just bought is not offered back"
    _, history = server.call("/history", {"user_id": shopper})
    assert [i["item_id"] for i in history["items"]] == bought[::-1], "latest first"


def test_a_batch_applied_by_another_process_is_served_without_a_restart(server: Server) -> None:
    pseudonym = Pseudonymiser(KEY).one("S-NEW-2")
    store = open_store(f"sqlite:///{server.data_dir / 'online' / SQLITE_FILE}", limit=1000)
    now = pd.Timestamp.now(tz="UTC")
    store.apply("test-batch-new-shopper", pd.DataFrame({
        "user_id": pseudonym, "event_id": ["x1", "x2", "x3"], "item_id": ["I1", "I3", "I5"],
        "event_type": "purchase", "timestamp": [now - pd.Timedelta(minutes=m) for m in (3, 2, 1)],
    }))

    deadline, page = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        _, page = server.call("/recommend", {"user_id": "S-NEW-2", "k": 4})
        if page["fallback"] is None:
            break
        time.sleep(0.2)

    assert page is not None and page["fallback"] is None, page
    assert not set(_items(page)) & {"I1", "I3", "I5"}
    status, meta = server.call("/metadata", method="GET")
    assert status == 200 and meta["shopper_state"]["store"] == "sqlite"
    assert meta["shopper_state"]["last_batch"] == "test-batch-new-shopper"
    assert meta["shopper_state"]["events"] >= 3


def test_stored_events_after_the_snapshot_are_the_ones_appended() -> None:
    snapshot = np.array([4, 5, 4])
    # A store fed by every batch holds the snapshot's events, then the newer ones.
    assert newer_than(snapshot, np.array([1, 4, 5, 4, 7, 8])).tolist() == [7, 8]
    # A store that only saw what happened since (live feedback): all of it is newer.
    assert newer_than(snapshot, np.array([9])).tolist() == [9]
    assert newer_than(np.array([], int), np.array([2, 3])).tolist() == [2, 3]


def test_a_shopper_whose_stored_items_the_model_never_saw_stays_a_cold_start(
        server: Server) -> None:
    status, _ = server.call("/feedback", {"user_id": "S-NEW-3", "item_id": "I1",
                                          "event_type": "view"})
    assert status == 200
    store = open_store(f"sqlite:///{server.data_dir / 'online' / SQLITE_FILE}", limit=1000)
    store.apply("test-batch-unseen-items", pd.DataFrame({
        "user_id": Pseudonymiser(KEY).one("S-NEW-3"), "event_id": ["y1"],
        "item_id": ["NOT-IN-THE-MODEL"], "event_type": "purchase",
        "timestamp": [pd.Timestamp.now(tz="UTC")]}))
    _, page = server.call("/recommend", {"user_id": "S-NEW-3", "k": 3})
    assert page["fallback"] == "cold_start", "a view is not a positive, an unseen item no signal"


def test_a_store_outage_answers_from_the_snapshot() -> None:
    from contracts.shopper_store import open_store as open_any
    from models.feature_spec import Vocabulary
    from serving.shoppers import LiveShoppers

    class Spec:  # the two things LiveShoppers reads of a feature spec
        items = Vocabulary("item_id", ("[UNK]", "A", "B"))
        history_length = 3

    snapshot = {"u1": np.array([0, 1, 2], np.int32)}
    live = LiveShoppers(open_any("redis://127.0.0.1:1/0", limit=10), Spec(), snapshot,
                        {"u1": np.array([1, 2], np.int32)})
    assert live.histories["u1"].tolist() == [0, 1, 2] and "u1" in live.histories
    assert "u2" not in live.histories and live.purchased.get("u2") is None


def test_a_product_added_after_training_is_served_from_its_content(server: Server) -> None:
    """An items batch applied to the store (as ingesting it does): within the refresh interval
    the endpoint explains, finds similar items for and takes feedback on the new item, where it
    answered 404 before; its answers mark it new."""
    status, _ = server.call("/explain", {"user_id": "C1", "item_id": "N-lamp"})
    assert status == 404
    store = open_store(f"sqlite:///{server.data_dir / 'online' / SQLITE_FILE}", limit=1000)
    store.apply("test-batch-new-items", None, pd.DataFrame({
        "item_id": ["N-lamp"], "title": ["Red lamp 90"], "category": ["lighting"],
        "brand": ["Nord"], "price": [9.0]}))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, answer = server.call("/explain", {"user_id": "C1", "item_id": "N-lamp"})
        if status == 200:
            break
        time.sleep(0.5)

    assert status == 200, answer
    explanation = answer["explanation"]
    assert explanation["kind"] == "integrated_gradients" and explanation["reason"]
    total = sum(a["attribution"] for a in explanation["attributions"])
    assert abs(total - (answer["score"] - explanation["baseline_score"])) < 0.05
    status, similar = server.call("/similar_items", {"item_id": "N-lamp", "k": 3})
    assert status == 200 and len(similar["items"]) == 3
    _, page = server.call("/recommend", {"user_id": "C1", "k": 12, "explain": False,
                                         "exclude_purchased": False})
    assert all(i["new"] == (i["item_id"] == "N-lamp") for i in page["items"])
    assert server.call("/feedback", {"user_id": "C1", "item_id": "N-lamp",
                                     "event_type": "view"})[0] == 200
