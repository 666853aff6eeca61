"""Hostile and careless requests, raw bytes and all: each gets the status it should, never a 500.

Schemathesis generates schema-shaped bodies; these are the ones a generator does not write:
non-finite numbers JSON has no words for, coercions a client would not mean, duplicate keys,
deep nesting, huge numbers, wrong content types.
"""

from __future__ import annotations

import pytest

from tests.support.champion import RAW_USERS
from tests.support.endpoint import Server

KNOWN = RAW_USERS[1]
ROUTES = {
    "/recommend": f'{{"user_id": "{KNOWN}", "k": 3}}',
    "/explain": f'{{"user_id": "{KNOWN}", "item_id": "I3"}}',
    "/similar_items": '{"item_id": "I3", "k": 3}',
    "/feedback": f'{{"user_id": "{KNOWN}", "item_id": "I3", "event_type": "view"}}',
}
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e309", "-1e309"]


def _with(body: str, field: str, raw_value: str) -> bytes:
    """``body`` (a JSON object text) with ``field`` set to the raw JSON token ``raw_value``."""
    return (body[:-1] + f', "{field}": {raw_value}}}').encode()


@pytest.mark.parametrize("path", sorted(ROUTES))
@pytest.mark.parametrize("token", NON_FINITE)
def test_non_finite_numbers_in_any_field_are_422_naming_it(server: Server, path: str,
                                                            token: str) -> None:
    fields = {"/recommend": ["k", "user_id", "explain"], "/explain": ["item_id"],
              "/similar_items": ["k"], "/feedback": ["quantity", "unit_price", "timestamp"]}
    for field in fields[path]:
        body = ROUTES[path].replace(f', "{field}": 3', "")
        status, answer = server.call(path, raw=_with(body, field, token))
        assert status == 422, (path, field, token, answer)
        assert any(field in e["loc"] for e in answer["detail"]), answer


@pytest.mark.parametrize("token", NON_FINITE)
def test_non_finite_numbers_nested_or_unknown_are_422(server: Server, token: str) -> None:
    nested = (f'{{"user_id": "{KNOWN}", "filters": {{"max_price": {token}}}}}').encode()
    status, answer = server.call("/recommend", raw=nested)
    assert status == 422 and any("max_price" in e["loc"] for e in answer["detail"]), answer
    unknown = (f'{{"user_id": "{KNOWN}", "colour": {token}}}').encode()
    status, answer = server.call("/recommend", raw=unknown)
    assert status == 422 and any("colour" in e["loc"] for e in answer["detail"]), answer


@pytest.mark.parametrize("field,value", [
    ("k", "true"), ("k", '"5"'), ("k", "5.0"), ("explain", '"yes"'), ("explain", "1"),
    ("exclude_purchased", '"false"'), ("user_id", "12345"),
])
def test_coercions_a_client_would_not_mean_are_refused(server: Server, field: str,
                                                        value: str) -> None:
    body = f'{{"user_id": "{KNOWN}"}}' if field != "user_id" else "{}"
    status, answer = server.call("/recommend", raw=_with(body, field, value).replace(b"{, ", b"{"))
    assert status == 422, answer
    assert any(field in e["loc"] for e in answer["detail"]), answer


@pytest.mark.parametrize("timestamp,problem", [
    ('"2999-01-01T00:00:00Z"', "future"), ('"2026-01-01T00:00:00"', "time zone"),
    ('"yesterday"', "datetime"),
])
def test_feedback_timestamps_must_be_real_past_moments(server: Server, timestamp: str,
                                                        problem: str) -> None:
    status, answer = server.call("/feedback", raw=_with(ROUTES["/feedback"], "timestamp",
                                                        timestamp))
    assert status == 422 and problem in str(answer["detail"]), answer


def test_duplicate_keys_take_the_last_value_as_json_parsers_do(server: Server) -> None:
    status, answer = server.call("/recommend", raw=b'{"user_id": "C1", "user_id": "C2", "k": 2}')
    assert status == 200 and answer["user_id"] == "C2", answer


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,  # deep nesting
    b'{"user_id": "C1", "filters": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
    b'{"user_id": "C1", "k": ' + b"9" * 5_000 + b"}",  # an integer beyond Python's parse limit
    b'{"user_id": "C1", "k": 1e999999}',
    b'{"user_id": "C1", "k": -0}',
    b'{"user_id": "\\ud800"}',  # a lone surrogate
    b'{"user_id": "C1", "\\udfff": 1}',  # ... in an unknown field's name
    b"\xef\xbb\xbf{}",  # a byte order mark
    b"",
    b"\x00\x01\x02",
])
def test_malformed_or_hostile_bytes_are_4xx(server: Server, raw: bytes) -> None:
    status, _ = server.call("/recommend", raw=raw)
    assert 400 <= status < 500, status


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_wrong_content_types_are_4xx(server: Server, content_type: str) -> None:
    status, _ = server.call("/recommend", raw=b'{"user_id": "C1"}',
                            headers={"Content-Type": content_type})
    assert 400 <= status < 500, status
