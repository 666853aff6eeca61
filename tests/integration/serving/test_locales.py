"""Answers in the shopper's language over real HTTP: Chinese reasons for every item with the same
facts as the English answer, the locale used said in every answer, and any header answered."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.support.champion import RAW_USERS
from tests.support.endpoint import Server
from tests.support.reason_words import CJK, same_facts_in_chinese

BRANDS = ["Nord"]  # the tiny shop's one brand: a name, never translated


def _recommend(server: Server, user: str, language: str | None = None, **body) -> dict:
    headers = {"Accept-Language": language} if language is not None else {}
    status, answer = server.call("/recommend", {"user_id": user, "k": 5} | body,
                                 headers=headers)
    assert status == 200, answer
    return answer


def _titles(server: Server) -> list[str]:
    """Every catalogue title (names: left as they are in any language), longest first."""
    titles = set()
    for user in RAW_USERS:
        _, history = server.call("/history", {"user_id": user, "k": 100})
        titles |= {h["title"] for h in history["items"]}
    return sorted(titles, key=len, reverse=True)


def test_chinese_reasons_state_the_english_facts_for_every_item(server: Server) -> None:
    titles = _titles(server)
    compared = 0
    for user in RAW_USERS:
        english = _recommend(server, user, "en")
        chinese = _recommend(server, user, "zh-CN,zh;q=0.9,en;q=0.5")
        compared += same_facts_in_chinese(english, chinese, titles, BRANDS)
        for zh in chinese["items"]:
            assert CJK.search(zh["category_name"]) and zh["price_text"].startswith("£")
            assert all(CJK.search(a["label"]) for a in zh["explanation"]["attributions"])
    assert compared >= len(RAW_USERS)


def test_an_explicit_locale_beats_the_header_and_an_unknown_one_falls_back(server) -> None:
    user = RAW_USERS[1]
    assert _recommend(server, user, "en", locale="zh-CN")["locale"] == "zh-CN"
    for answer in (_recommend(server, user, locale="fr-FR"), _recommend(server, user, "fr-FR")):
        assert (answer["locale"], answer["locale_fallback"]) == ("en", True)
        assert not CJK.search(answer["items"][0]["explanation"]["reason"])
    plain = _recommend(server, user)
    assert (plain["locale"], plain["locale_fallback"]) == ("en", False)


def test_cold_start_similar_items_explain_and_history_speak_chinese(server: Server) -> None:
    zh = {"Accept-Language": "zh-CN"}
    cold = _recommend(server, "never-seen-shopper", "zh-CN")
    assert cold["fallback"] == "cold_start" and cold["locale"] == "zh-CN"
    assert all(CJK.search(i["explanation"]["reason"]) for i in cold["items"])
    item = cold["items"][0]["item_id"]
    for path, body in (("/similar_items", {"item_id": item, "k": 3}),
                       ("/explain", {"user_id": RAW_USERS[1], "item_id": item}),
                       ("/history", {"user_id": RAW_USERS[1], "k": 3})):
        status, answer = server.call(path, body, headers=zh)
        assert status == 200 and answer["locale"] == "zh-CN", answer
        reasons = [i["reason"] for i in answer.get("items", ()) if "reason" in i]
        reasons += [answer["explanation"]["reason"]] if "explanation" in answer else []
        assert all(CJK.search(r) for r in reasons), reasons
        assert all(CJK.search(i["category_name"]) for i in answer.get("items", ()))


HOSTILE = [b"", b"*", b";;;", b"q=1", b"zh-CN;q=abc", b"zh;q=NaN", b"\xff\xfe\xfd", b"\x7f",
           b"en" * 4000, b",".join([b"x-y"] * 3000), b"zh-CN;q=1e999", b"<script>alert(1)</script>",
           b"\xe4\xb8\xad\xe6\x96\x87", b"-", b"zh--CN", b"..", b"%00", b"en;q=0, *;q=0"]


@pytest.mark.parametrize("header", HOSTILE, ids=lambda h: repr(h[:20]))
def test_a_malformed_accept_language_gets_the_default_never_a_500(server, header) -> None:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    body = json.dumps({"user_id": RAW_USERS[1], "k": 2}).encode()
    connection.putrequest("POST", "/recommend")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.putheader("Accept-Language", header)
    connection.endheaders(body)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    if response.status == 400:  # the HTTP parser refuses control bytes before the app sees them
        assert header == b"\x7f" and "Invalid HTTP request" in text
        return
    assert response.status == 200, text
    answer = json.loads(text)
    assert answer["locale"] in ("en", "zh-CN") and isinstance(answer["locale_fallback"], bool)


@pytest.mark.parametrize("locale", ["zh CN", "", "x" * 40, "zh-CN\n", "中文", 7, None])
def test_a_malformed_locale_field_is_a_422_naming_it(server, locale) -> None:
    status, answer = server.call("/recommend", {"user_id": RAW_USERS[1], "locale": locale})
    if locale is None:
        assert status == 200 and answer["locale"] == "en"
        return
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "locale"], answer
