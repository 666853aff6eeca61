"""The /explore page in a real browser (Debian's chromium driven by Playwright, no download):
the shopper's view first, in English and in Chinese, the engineer's view one click away, and no
Chinese glyph drawn as a box (tofu; Debian's fonts-noto-cjk draws them).

Skipped with a message where chromium is not installed (`apt-get install chromium`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest

from tests.support.champion import RAW_USERS
from tests.support.endpoint import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a closed network: without them chromium keeps reaching for Google's services.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PSEUDONYM = re.compile(r"u_[0-9a-f]{16}")
CJK = re.compile(r"[\u4e00-\u9fff]")
FEATURE_NAME = re.compile(r"\b[a-z]+_[a-z_]+\b")  # category_affinity, day_of_week, ...

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium): the browser test needs it")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def _tab(browser, server: Server, locale: str) -> Iterator:
    """A tab on /explore whose browser asks for ``locale`` (its Accept-Language)."""
    context = browser.new_context(locale=locale)
    # Nothing beyond the endpoint: any other address fails the test.
    outside: list[str] = []
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"),
                  lambda route: outside.append(route.request.url) or route.abort())
    tab = context.new_page()
    tab.goto(f"{server.url}/explore")
    yield tab
    assert outside == [], f"the page reached beyond the endpoint: {outside}"
    context.close()


@pytest.fixture(scope="module")
def page(browser, server: Server) -> Iterator:
    yield from _tab(browser, server, "en-GB")


@pytest.fixture(scope="module")
def chinese_browser(browser, server: Server) -> Iterator:
    yield from _tab(browser, server, "zh-CN")


def _ask(page, user: str, category: str = "") -> None:
    """Submit the form and wait until the page has its answer (and no error)."""
    before = page.evaluate("Number(document.body.dataset.answered || 0)")
    page.fill("#user", user)
    page.fill("#k", "3")
    page.fill("#category", category)
    page.click("#show")
    _answered(page, before)


def _answered(page, before: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.answered || 0) > {before}",
                           timeout=60_000)
    assert page.inner_text("#status") == "", page.inner_text("#status")


def _engineer(page, on: bool) -> None:
    if page.evaluate("document.body.classList.contains('engineer')") != on:
        page.click("#view")


def test_the_page_opens_on_what_the_shopper_sees(page) -> None:
    _engineer(page, False)
    _ask(page, RAW_USERS[1])

    cards = page.locator(".card")
    assert 1 <= cards.count() <= 3
    first = cards.first
    assert first.locator(".image").is_visible(), "an image placeholder"
    assert first.locator("h3").inner_text().strip()
    assert first.locator(".price").inner_text().startswith("£")
    assert first.locator(".reason").inner_text().strip().endswith(".")
    assert not first.locator(".meta").is_visible(), "scores and ranks are the engineer's"
    assert not first.locator("svg.chart").first.is_visible(), "the chart waits for a click"
    assert "Recommended for you" in page.inner_text("#answer")
    assert not PSEUDONYM.search(page.inner_text("body")), "no pseudonym on the page"


def test_why_this_opens_a_chart_with_plain_labels(page) -> None:
    _engineer(page, False)
    _ask(page, RAW_USERS[1])
    first = page.locator(".card").first
    first.locator("button.why").click()
    chart = first.locator(".why-chart")
    assert chart.is_visible() and first.locator("button.why").inner_text() == "Hide"
    labels = chart.locator("svg text").all_text_contents()
    assert labels and not [t for t in labels if FEATURE_NAME.search(t)], labels
    first.locator("button.why").click()
    assert not chart.is_visible()


def test_the_engineer_s_view_is_one_click_away(page) -> None:
    _ask(page, RAW_USERS[1])
    _engineer(page, True)
    first = page.locator(".card").first
    assert first.locator("svg.chart rect[data-feature]").count() >= 1, "a bar per attribution"
    assert "completeness delta" in first.locator(".numbers").inner_text()
    assert re.search(r"model shoprec v\d+", page.inner_text("#answer"))
    assert "locale en" in page.inner_text("#answer")
    assert page.locator("#history li").count() >= 1, "the shopper's recent purchases"
    _engineer(page, False)
    assert not first.locator(".numbers").is_visible()


def test_similar_items_open_under_a_card(page) -> None:
    _ask(page, RAW_USERS[1])
    _engineer(page, True)
    first = page.locator(".card").first
    first.locator("button", has_text="Similar items").click()
    page.wait_for_function("document.querySelector('.card .similar li') !== null")
    assert first.locator(".similar li").count() >= 1


def test_filters_narrow_the_cards(page) -> None:
    _ask(page, RAW_USERS[1], category="kitchen")
    _engineer(page, True)
    metas = page.locator(".card .meta").all_inner_texts()
    assert metas and all(m.startswith("kitchen") for m in metas)


def test_an_unknown_shopper_is_labelled_cold_start(page) -> None:
    _ask(page, "never-seen-shopper")
    _engineer(page, False)
    assert page.locator("#cold-start").is_visible()
    assert page.locator(".card").count() >= 1
    assert page.locator(".card button.why").count() == 0, "best sellers have no attributions"
    _engineer(page, True)
    assert "best seller" in page.locator(".card .numbers").first.inner_text()


def test_the_language_selector_switches_the_shopper_s_view_to_chinese(page) -> None:
    _engineer(page, False)
    _ask(page, RAW_USERS[1])
    before = page.evaluate("Number(document.body.dataset.answered || 0)")
    page.select_option("#locale", "zh-CN")  # asks again, with the locale
    _answered(page, before)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    first = page.locator(".card").first
    assert CJK.search(first.locator(".reason").inner_text())
    assert first.locator("button.why").inner_text() == "为什么推荐？"
    first.locator("button.why").click()
    labels = first.locator(".why-chart svg text").all_text_contents()
    assert labels and all(CJK.search(t) for t in labels), labels
    assert "为您推荐" in page.inner_text("#answer")
    before = page.evaluate("Number(document.body.dataset.answered || 0)")
    page.select_option("#locale", "en")
    _answered(page, before)
    assert not CJK.search(page.locator(".card .reason").first.inner_text())


def test_a_chinese_browser_gets_chinese_and_no_glyph_is_a_box(chinese_browser) -> None:
    """Each character of the reason, drawn in the reason's own font, must differ from the
    missing-glyph box (drawn for a code point no font has) and must not be blank."""
    page = chinese_browser
    _ask(page, RAW_USERS[1])
    reason = page.locator(".card .reason").first
    text = reason.inner_text()
    assert CJK.search(text) and page.evaluate("document.documentElement.lang") == "zh-CN"
    tofu = page.evaluate("""(text) => {
      const font = getComputedStyle(document.querySelector('.card .reason')).font;
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 48;
      const ink = canvas.getContext('2d', {willReadFrequently: true});
      const draw = (ch) => {
        ink.clearRect(0, 0, 48, 48); ink.font = font; ink.textBaseline = 'top';
        ink.fillText(ch, 4, 4);
        return Array.from(ink.getImageData(0, 0, 48, 48).data).join(',');
      };
      const box = draw('\\u{10FFFD}');  // a private code point: the missing-glyph rendering
      const chars = [...new Set(text)].filter((ch) => /[\\u4e00-\\u9fff]/.test(ch));
      const blank = draw(' ');
      return chars.filter((ch) => { const d = draw(ch); return d === box || d === blank; });
    }""", text)
    assert tofu == [], f"drawn as a box or not at all: {tofu}"
    shot = reason.screenshot()
    assert len(shot) > 500, "the reason renders"
