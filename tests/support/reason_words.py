"""What a served reason states whatever its language, and what of it is not a name: the checks
that a Chinese answer says the English answer's facts in Chinese (issue 29)."""

from __future__ import annotations

import re
from collections import Counter

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")


def facts(reason: str, titles: list[str]) -> tuple[Counter, Counter, Counter]:
    """Titles named, amounts, shares and counts in ``reason`` (``titles`` longest first)."""
    named = Counter()
    for title in titles:
        if title in reason:
            named[title] += reason.count(title)
            reason = reason.replace(title, " ")
    amounts = Counter(re.findall(r"£[\d,]+\.\d\d", reason))
    reason = re.sub(r"£[\d,]+\.\d\d", " ", reason)
    shares = Counter(re.findall(r"[\d.]+%", reason))
    reason = re.sub(r"[\d.]+%", " ", reason).replace("once", "1")
    # Counts: whole numbers that are not part of a time of day (14:00, 2:00 PM).
    counts = Counter(re.findall(r"(?<![\d:])\d+(?![\d:])", reason))
    return named | amounts, shares, counts


def without_names(text: str, names: list[str]) -> str:
    """``text`` with every name (titles, brands: never translated) taken out, longest first."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "")
    return text


def same_facts_in_chinese(english: dict, chinese: dict, titles: list[str],
                          brands: list[str]) -> int:
    """Asserts that two answers for one shopper (``en``, ``zh-CN``) show the same items with the
    same explanations, every Chinese reason in Chinese (no Latin letters but names) stating
    the English reason's facts; the number of items compared."""
    assert (english["locale"], chinese["locale"]) == ("en", "zh-CN"), (english, chinese)
    assert not english["locale_fallback"] and not chinese["locale_fallback"]
    assert [i["item_id"] for i in chinese["items"]] == [i["item_id"] for i in english["items"]]
    for en, zh in zip(english["items"], chinese["items"], strict=True):
        assert _unlabelled(zh) == _unlabelled(en), "the same explanation underneath"
        reason = zh["explanation"]["reason"]
        assert CJK.search(reason), reason
        assert not LATIN.search(without_names(reason, [*titles, *brands])), \
            f"English left: {reason!r}"
        assert facts(reason, titles) == facts(en["explanation"]["reason"], titles), \
            (reason, en["explanation"]["reason"])
    return len(english["items"])


def _unlabelled(item: dict) -> list[dict]:
    return [{k: v for k, v in a.items() if k != "label"}
            for a in item["explanation"].get("attributions", ())]
