"""The real endpoint over HTTP: every API, cold start, unknown items, bad bodies, feedback."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.steps.package import check_recommendation
from tests.support.champion import RAW_USERS
from tests.support.endpoint import Server

KNOWN = RAW_USERS[1]


def test_probes_and_metadata_name_the_model(server: Server) -> None:
    assert server.call("/healthz", method="GET")[0] == 200
    assert server.call("/readyz", method="GET")[0] == 200
    status, meta = server.call("/metadata", method="GET")
    assert status == 200
    assert meta["name"] == "shoprec" and meta["version"] == "1" and meta["run_id"]
    assert meta["data_hash"] == "tiny-0" and meta["window_start"] < meta["window_end"]
    logged = _run_metrics(server, meta["run_id"])
    assert meta["metrics"] == {k: v for k, v in logged.items() if k.endswith("_at_10")}
    assert 0.0 <= meta["metrics"]["ndcg_at_10"] <= 1.0
    assert "probe_user" not in meta, "the metadata names no shopper"
    assert server.call("/metadata")[0] == 405, "metadata is read with GET only"


def _run_metrics(server: Server, run_id: str) -> dict[str, float]:
    """The training run's metrics as its own MLflow store holds them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{server.data_dir / 'mlflow.db'}")
    return client.get_run(run_id).data.metrics


def test_recommend_explains_each_item_and_attributions_add_up(server: Server) -> None:
    status, answer = server.call("/recommend", {"user_id": KNOWN, "k": 3})

    assert status == 200, answer
    assert answer["user_id"] == KNOWN and answer["fallback"] is None
    assert answer["model"]["version"] == "1"
    assert [i["rank"] for i in answer["items"]] == list(range(1, len(answer["items"]) + 1))
    assert 1 <= len(answer["items"]) <= 3
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in answer["items"]:
        assert item["title"] and item["category"] in ("kitchen", "lighting")
        explanation = item["explanation"]
        assert explanation["kind"] == "integrated_gradients"
        assert explanation["reason"].endswith(".")
        assert {"feature", "value", "attribution"} <= set(explanation["attributions"][0])
    # completeness from the response's own numbers: sum(attributions) == score - baseline
    assert check_recommendation(answer) == []


def test_explain_false_filters_and_purchases(server: Server) -> None:
    _, plain = server.call("/recommend", {"user_id": KNOWN, "k": 5, "explain": False,
                                          "exclude_purchased": False,
                                          "filters": {"category": "kitchen", "max_price": 12}})
    assert plain["items"], plain
    for item in plain["items"]:
        assert item["explanation"] is None
        assert item["category"] == "kitchen" and item["price"] <= 12


def test_raw_ids_are_pseudonymised_like_ingestion(server: Server) -> None:
    """A pseudonym itself is not a known raw id: it gets hashed again and is unknown."""
    from contracts.pseudonyms import Pseudonymiser
    from tests.support.endpoint import KEY

    _, known = server.call("/recommend", {"user_id": KNOWN, "k": 2, "explain": False})
    _, hashed = server.call("/recommend", {"user_id": Pseudonymiser(KEY).one(KNOWN), "k": 2,
                                           "explain": False})
    assert known["fallback"] is None and hashed["fallback"] == "cold_start"


def test_unknown_user_gets_popular_items_in_segment_with_a_reason(server: Server) -> None:
    status, answer = server.call("/recommend", {"user_id": "never-seen", "k": 3,
                                                "filters": {"category": "lighting"}})
    assert status == 200 and answer["fallback"] == "cold_start"
    assert answer["items"] and all(i["category"] == "lighting" for i in answer["items"])
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in answer["items"]:
        note = item["explanation"]
        assert note["kind"] == "popularity" and "do not know your purchases" in note["reason"]
        assert note["share_of_purchases"] == pytest.approx(item["score"])
        assert not {"attributions", "baseline_score", "completeness_delta"} & set(note), \
            "no attribution method produced a best seller: no attribution fields"
    assert check_recommendation(answer) == []


def test_a_pseudonym_reaches_the_same_shopper_as_the_raw_id(server: Server) -> None:
    from contracts.pseudonyms import Pseudonymiser
    from tests.support.endpoint import KEY

    body = {"k": 3, "explain": False}
    _, by_raw = server.call("/recommend", body | {"user_id": KNOWN})
    status, by_pseudonym = server.call("/recommend",
                                       body | {"pseudonym": Pseudonymiser(KEY).one(KNOWN)})
    assert status == 200 and by_pseudonym["fallback"] is None
    assert [i["item_id"] for i in by_pseudonym["items"]] == [i["item_id"] for i in by_raw["items"]]


def test_explain_one_pair_matches_the_recommendation(server: Server) -> None:
    _, page = server.call("/recommend", {"user_id": KNOWN, "k": 1})
    item = page["items"][0]
    status, answer = server.call("/explain", {"user_id": KNOWN, "item_id": item["item_id"]})
    assert status == 200, answer
    assert answer["score"] == pytest.approx(item["score"], abs=1e-4)
    total = sum(a["attribution"] for a in answer["explanation"]["attributions"])
    gap = answer["score"] - answer["explanation"]["baseline_score"]
    assert total == pytest.approx(gap, rel=0.01, abs=1e-4)


def test_explain_for_an_unknown_user_says_cold_start(server: Server) -> None:
    status, answer = server.call("/explain", {"user_id": "never-seen", "item_id": "I2"})
    assert status == 200 and answer["fallback"] == "cold_start"
    total = sum(a["attribution"] for a in answer["explanation"]["attributions"])
    gap = answer["score"] - answer["explanation"]["baseline_score"]
    assert total == pytest.approx(gap, rel=0.01, abs=1e-4)


def test_similar_items_share_features(server: Server) -> None:
    status, answer = server.call("/similar_items", {"item_id": "I3", "k": 4})
    assert status == 200, answer
    ids = [i["item_id"] for i in answer["items"]]
    assert "I3" not in ids and len(ids) == len(set(ids)) == 4
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in answer["items"]:
        for feature in item["shared"]:
            assert feature in ("category", "brand", "price_band")
        if "category" in item["shared"]:
            assert item["category"] == "lighting" and "lighting" in item["reason"]


@pytest.mark.parametrize("path,body", [
    ("/explain", {"user_id": KNOWN, "item_id": "NOPE"}),
    ("/similar_items", {"item_id": "NOPE", "k": 2}),
    ("/feedback", {"user_id": KNOWN, "item_id": "NOPE", "event_type": "view"}),
])
def test_unknown_items_are_404_with_a_message(server: Server, path: str, body: dict) -> None:
    status, answer = server.call(path, body)
    assert status == 404 and "NOPE" in answer["detail"]


@pytest.mark.parametrize("body,field", [
    ({"user_id": KNOWN, "k": 0}, "k"),
    ({"user_id": KNOWN, "k": 101}, "k"),
    ({"user_id": KNOWN, "k": "ten"}, "k"),
    ({"k": 3}, "user_id"),
    ({"user_id": KNOWN, "pseudonym": "u_0123456789abcdef"}, "pseudonym"),
    ({"pseudonym": "C1"}, "pseudonym"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": KNOWN, "filters": {"max_price": -1}}, "max_price"),
    ({"user_id": KNOWN, "colour": "red"}, "colour"),
])
def test_invalid_bodies_name_the_field(server: Server, body: dict, field: str) -> None:
    status, answer = server.call("/recommend", body)
    assert status == 422
    assert any(field in map(str, error["loc"]) or field in error["msg"]
               for error in answer["detail"]), answer


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[]", b"null", b'{"user_id": "\xff"}'])
def test_malformed_json_is_4xx(server: Server, raw: bytes) -> None:
    assert 400 <= server.call("/recommend", raw=raw)[0] < 500


def test_feedback_appends_a_contract_event_to_the_hour_file(server: Server) -> None:
    """One line of the current hour's file, events columns, the shopper already pseudonymised;
    the answer names the file relative to the inbox, never a server path."""
    from contracts.feedback import COLUMNS
    from contracts.pseudonyms import Pseudonymiser
    from tests.support.endpoint import KEY

    status, answer = server.call("/feedback", {"user_id": KNOWN, "item_id": "I3",
                                               "event_type": "purchase", "quantity": 2,
                                               "unit_price": 8.0})
    assert status == 200, answer
    assert re.fullmatch(r"feedback/\d{4}-\d{2}-\d{2}T\d{2}\.csv", answer["batch"]), answer
    assert str(server.data_dir) not in answer["batch"]
    path = server.data_dir / "inbox" / answer["batch"]
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row["event_id"] == answer["feedback_id"]]
    assert tuple(reader.fieldnames or ()) == COLUMNS
    [row] = rows
    assert row["user_id"] == Pseudonymiser(KEY).one(KNOWN), "pseudonymised before it is written"
    assert KNOWN not in path.read_text().split(",")
    assert row["item_id"] == "I3" and row["quantity"] == "2" and float(row["unit_price"]) == 8.0
    assert row["event_type"] == "purchase" and row["timestamp"].endswith("Z")


def test_feedback_older_than_the_window_is_422_naming_the_timestamp(server: Server) -> None:
    old = (datetime.now(UTC) - timedelta(hours=169)).isoformat()
    status, answer = server.call("/feedback", {"user_id": KNOWN, "item_id": "I3",
                                               "event_type": "view", "timestamp": old})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "timestamp"], answer
    assert "older than 168 hours" in answer["detail"][0]["msg"]
    recent = (datetime.now(UTC) - timedelta(hours=167)).isoformat()
    assert server.call("/feedback", {"user_id": KNOWN, "item_id": "I3", "event_type": "view",
                                     "timestamp": recent})[0] == 200


def test_explanations_say_you_and_never_echo_the_pseudonym(server: Server) -> None:
    from contracts.pseudonyms import Pseudonymiser
    from tests.support.endpoint import KEY

    pseudonym = Pseudonymiser(KEY).one(KNOWN)
    _, page = server.call("/recommend", {"user_id": KNOWN, "k": 5})
    _, by_pseudonym = server.call("/recommend", {"pseudonym": pseudonym, "k": 5})
    _, pair = server.call("/explain", {"user_id": KNOWN, "item_id": page["items"][0]["item_id"]})
    explanations = [i["explanation"] for i in page["items"] + by_pseudonym["items"]]
    explanations.append(pair["explanation"])
    values = {a["feature"]: a["value"] for e in explanations for a in e["attributions"]}
    assert values.get("user_id", "you") == "you", "the shopper's own id reads 'you'"
    for e in explanations:
        assert pseudonym not in json.dumps(e) and "u_" not in json.dumps(e["attributions"])


def test_history_lists_the_purchases_the_model_starts_from(server: Server) -> None:
    status, known = server.call("/history", {"user_id": KNOWN, "k": 3})
    assert status == 200, known
    assert 1 <= len(known["items"]) <= 3 and known["model"]["version"]
    assert all(i["category"] in ("kitchen", "lighting") and i["title"] for i in known["items"])
    status, unknown = server.call("/history", {"user_id": "never-seen"})
    assert status == 200 and unknown["items"] == []
