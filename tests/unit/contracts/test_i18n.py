"""The catalogs: complete, with the placeholders their message ids have, compiled as committed;
every template says the same facts in every locale; the locale a request gets, whatever it sends.

A missing or broken translation fails here, in the build, never in a request.
"""

from __future__ import annotations

import io
import re
import shutil
import string
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from contracts.i18n import CATALOGUE, DOMAIN, LOCALES_DIR, Locales, localise
from models.reasons import TEMPLATES, Sentence, render

KEYWORDS = DEFAULT_KEYWORDS | {"Template": (1,), "Counted": (1, 2)}  # as `make i18n` extracts
SOURCE = "en"  # the message ids' own language: its msgstr may stay empty
POS = sorted(LOCALES_DIR.glob("*/LC_MESSAGES/*.po"))
LOCALES = Locales.load("en", "GBP")


def _names(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _read(path: Path):
    with path.open("rb") as handle:
        return read_po(handle)


def test_the_template_holds_every_message_the_code_marks() -> None:
    """`make i18n` was run after the last wording change: else a message has no translation."""
    repo = LOCALES_DIR.parents[1]
    marked = {m[2] for package in ("models", "contracts", "serving")
              for m in extract_from_dir(repo / package, [("**.py", "python")],
                                       keywords=KEYWORDS)}
    template = {m.id for m in _read(LOCALES_DIR / f"{DOMAIN}.pot") if m.id}
    assert marked == template, "run `make i18n`"


def test_there_are_english_and_chinese_catalogs() -> None:
    assert {"en", "zh-CN"} <= set(LOCALES.tags)


@pytest.mark.parametrize("path", [p for p in POS if p.stem == DOMAIN],
                         ids=lambda p: p.parent.parent.name)
def test_every_catalog_translates_every_message_with_its_placeholders(path: Path) -> None:
    template = {m.id for m in _read(LOCALES_DIR / f"{DOMAIN}.pot") if m.id}
    catalog = _read(path)
    held = {m.id: m for m in catalog if m.id}
    assert template - set(held) == set(), f"missing in {path}: run `make i18n`"
    assert not [m.id for m in held.values() if m.fuzzy], "fuzzy entries are not used"
    for message in held.values():
        problem = _broken(message, source=path.parent.parent.name == SOURCE)
        assert problem is None, f"{path}: {problem}"


def _broken(message, source: bool) -> str | None:
    """What is wrong with a catalog entry: untranslated (outside the source language), or a
    placeholder dropped or invented (a plural form may spell its count out: "once")."""
    ids = message.id if isinstance(message.id, tuple) else (message.id,)
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    if not source and not all(strings):
        return f"no translation of {ids[0]!r}"
    for text in filter(None, strings):
        if not (_names(text) <= _names(ids[-1]) and _names(ids[0]) <= _names(text) | {"count"}):
            return f"{text!r} breaks the placeholders of {ids[0]!r}"
    return None


def test_the_catalog_check_catches_a_broken_or_missing_translation() -> None:
    from babel.messages.catalog import Message

    assert _broken(Message("You often buy {category}", "您常买{categroy}"), False)
    assert _broken(Message("You often buy {category}", "您常买"), False)
    assert _broken(Message("You often buy {category}", ""), False)
    assert _broken(Message("You often buy {category}", ""), True) is None
    assert _broken(Message(("once {brand}", "{count} {brand}"), ("{count}次{brand}",)), False) \
        is None


@pytest.mark.parametrize("path", POS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_catalog_compiles_to_the_committed_mo(path: Path) -> None:
    catalog = _read(path)
    problems = [(m.id, errors) for m, errors in catalog.check()]
    assert problems == []
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    assert path.with_suffix(".mo").read_bytes() == compiled.getvalue(), "run `make i18n`"


def test_catalogue_names_are_plain_names() -> None:
    for path in LOCALES_DIR.glob(f"*/LC_MESSAGES/{CATALOGUE}.po"):
        for message in _read(path):
            if message.id:
                assert message.context in ("category", "tag") and not _names(message.string)


# ---- the same facts in every language ------------------------------------------------------------
FACTS = {
    "history_items": {"bought": ("Red Lamp 5", "Chef Knife Pro")},
    "category_affinity": {"category": "kitchenware"},
    "brand_affinity": {"brand": "Nordvik", "count": 3},
    "price_band_affinity": {"band": "mid", "low": 10.0, "high": 20.5},
    "popularity": {"share": 0.0123},
    "history": {}, "retrieval_score": {},
    "hour": {"hour": 14},
    "day_of_week": {"day": 2},
    "tag_affinity": {"tag": "summer"},
    "rating": {},
    "fallback": {},
    "popular_in": {"share": 0.05, "category": "garden"},
    "popular": {"share": 0.05},
    "similar": {"shared": (("category", "books"), ("brand", "Paperlane"))},
    "similar_none": {},
}


def _stated(key: str, words) -> list[str]:
    """What the sentence must show, as the locale writes it."""
    facts = FACTS[key]
    shown = list(facts.get("bought", ())) + [str(facts[k]) for k in ("brand", "count")
                                             if k in facts]
    shown += [words.price(facts[k]) for k in ("low", "high") if k in facts]
    shown += [words.percent(facts["share"])] if "share" in facts else []
    shown += [words.pgettext("category", facts["category"])] if "category" in facts else []
    shown += [words.pgettext("tag", facts["tag"])] if "tag" in facts else []
    shown += [words.hour(facts["hour"])] if "hour" in facts else []
    shown += [words.weekday(facts["day"])] if "day" in facts else []
    shown += [words.pgettext("category", "books"), "Paperlane"] if "shared" in facts else []
    return shown


def test_facts_cover_every_template() -> None:
    assert set(FACTS) == set(TEMPLATES)


@pytest.mark.parametrize("tag", LOCALES.tags)
@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_template_states_its_facts_in_every_locale(tag: str, key: str) -> None:
    words = LOCALES.words[tag.lower()]
    text = render((Sentence(key, FACTS[key]),), words)
    assert text and "{" not in text
    for fact in _stated(key, words):
        assert fact in text, f"{tag} {key}: {fact!r} not in {text!r}"
    assert "1.2" in words.percent(0.0123) and "20.50" in words.price(20.5)


NAMES = re.compile(r"Red Lamp 5|Chef Knife Pro|Nordvik|Paperlane")


def test_chinese_reasons_are_chinese_but_for_names() -> None:
    words = LOCALES.words["zh-cn"]
    for key in TEMPLATES:
        text = NAMES.sub("", render((Sentence(key, FACTS[key]),), words))
        assert re.search(r"[\u4e00-\u9fff]", text), text
        assert not re.search(r"[A-Za-z]", text), f"English left in {text!r}"


def test_a_count_of_one_reads_naturally() -> None:
    said = (Sentence("brand_affinity", {"brand": "Nordvik", "count": 1}),)
    assert render(said, LOCALES.words["en"]) == "From Nordvik, which you have bought once."
    assert render(said, LOCALES.words["zh-cn"]) == "来自您买过1次的品牌Nordvik。"


def test_two_sentences_join_as_each_language_writes_them() -> None:
    said = (Sentence("category_affinity", {"category": "books"}), Sentence("rating", {}))
    assert render(said, LOCALES.words["en"]) == \
        "You often buy books. Highly rated by other shoppers."
    assert render(said, LOCALES.words["zh-cn"]) == "您常买图书。其他顾客评价很高。"


def test_localised_items_keep_the_facts_and_word_the_rest() -> None:
    item = {"item_id": "I1", "title": "Red Lamp 5", "category": "kitchenware", "price": 12.5,
            "explanation": {"kind": "integrated_gradients", "reason": "x",
                            "said": (Sentence("category_affinity", FACTS["category_affinity"]),),
                            "attributions": [{"feature": "category_affinity", "value": "3",
                                              "attribution": 0.2}]}}
    [zh] = localise([item], LOCALES.words["zh-cn"])
    assert zh["category_name"] == "厨具" and zh["price_text"] == "£12.50"
    assert zh["explanation"]["reason"] == "您常买厨具。" and "said" not in zh["explanation"]
    assert zh["explanation"]["attributions"][0]["label"] == "您常买的品类"
    assert "said" in item["explanation"], "the shared page is left as it was"


def test_a_new_language_is_a_new_catalog(tmp_path: Path) -> None:
    folder = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, folder)
    shutil.copytree(folder / "en", folder / "fr")  # untranslated: reads as the message ids
    assert "fr" in Locales.load("en", "EUR", folder).tags


# ---- the locale a request gets ------------------------------------------------------------------
@pytest.mark.parametrize(("header", "tag", "fallback"), [
    (None, "en", False), ("", "en", False), ("*", "en", False),
    ("zh-CN", "zh-CN", False), ("zh-cn", "zh-CN", False), ("zh_CN", "zh-CN", False),
    ("zh", "zh-CN", False), ("zh-Hans", "zh-CN", False), ("zh-SG", "zh-CN", False),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN", False), ("en-GB,zh;q=0.5", "en", False),
    ("fr;q=1, zh;q=0.5", "zh-CN", False), ("en;q=0.1, zh-CN;q=0.9", "zh-CN", False),
    ("fr-FR", "en", True), ("zh-TW", "en", True), ("zh-Hant", "en", True), ("zh;q=0", "en", True),
    ("en;q=abc", "en", True), (";;;,,,", "en", True), ("\x00\xff\ud800", "en", True),
    ("zh-CN;q=NaN", "en", True), ("zh-CN;q=1e309", "en", True), ("a" * 100_000, "en", True),
    ("zh-CN," * 50_000, "zh-CN", False), ("<script>", "en", True), ("qaa-x-private", "en", True),
])
def test_any_accept_language_gets_a_locale_and_says_if_it_fell_back(header, tag, fallback) -> None:
    choice = LOCALES.choose(None, header)
    assert (choice.tag, choice.fallback) == (tag, fallback)


def test_an_explicit_locale_beats_the_header() -> None:
    assert LOCALES.choose("zh-CN", "en").tag == "zh-CN"
    unknown = LOCALES.choose("fr", "zh-CN")
    assert (unknown.tag, unknown.fallback) == ("en", True)


def test_distinct_hostile_headers_cannot_grow_the_cache() -> None:
    locales = Locales.load("zh_CN", "GBP")
    for n in range(10_000):
        locales.choose(None, f"x{n}")
    assert len(locales._choices) <= 4096
    assert locales.choose(None, "fr").tag == "zh-CN", "the shop default"


def test_a_default_without_a_catalog_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="SHOPREC_SHOP_LOCALE"):
        Locales.load("fr", "GBP")
