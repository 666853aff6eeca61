"""The /explore page in a real browser (Debian's chromium driven by Playwright, no download).

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

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium): the browser test needs it")


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context()
        # Nothing beyond the endpoint: any other address fails the test.
        outside: list[str] = []
        context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"),
                      lambda route: outside.append(route.request.url) or route.abort())
        tab = context.new_page()
        tab.goto(f"{server.url}/explore")
        yield tab
        assert outside == [], f"the page reached beyond the endpoint: {outside}"
        browser.close()


def _ask(page, user: str, category: str = "") -> None:
    """Submit the form and wait until the page has its answer (and no error)."""
    before = page.evaluate("Number(document.body.dataset.answered || 0)")
    page.fill("#user", user)
    page.fill("#k", "3")
    page.fill("#category", category)
    page.click("#show")
    page.wait_for_function(f"Number(document.body.dataset.answered || 0) > {before}",
                           timeout=60_000)
    assert page.inner_text("#status") == "", page.inner_text("#status")


def test_a_known_shopper_sees_cards_with_reasons_and_attribution_charts(page) -> None:
    _ask(page, RAW_USERS[1])

    cards = page.locator(".card")
    assert 1 <= cards.count() <= 3
    first = cards.first
    assert first.locator("h3").inner_text().strip()
    assert first.locator(".reason").inner_text().strip().endswith(".")
    assert first.locator("svg.chart rect[data-feature]").count() >= 1, "a bar per attribution"
    assert "completeness delta" in first.locator(".numbers").inner_text()
    assert "personalised" in page.inner_text("#answer")
    assert re.search(r"model shoprec v\d+", page.inner_text("#answer"))
    assert page.locator("#history li").count() >= 1, "the shopper's recent purchases"
    assert not PSEUDONYM.search(page.inner_text("body")), "no pseudonym on the page"


def test_similar_items_open_under_a_card(page) -> None:
    _ask(page, RAW_USERS[1])
    first = page.locator(".card").first
    first.locator("button", has_text="Similar items").click()
    page.wait_for_function("document.querySelector('.card .similar li') !== null")
    assert first.locator(".similar li").count() >= 1


def test_filters_narrow_the_cards(page) -> None:
    _ask(page, RAW_USERS[1], category="kitchen")
    metas = page.locator(".card .meta").all_inner_texts()
    assert metas and all(m.startswith("kitchen") for m in metas)


def test_an_unknown_shopper_is_labelled_cold_start(page) -> None:
    _ask(page, "never-seen-shopper")
    assert page.locator("#cold-start").is_visible()
    assert page.locator(".card").count() >= 1
    assert page.locator(".card svg.chart").count() == 0, "best sellers have no attributions"
    assert "best seller" in page.locator(".card .numbers").first.inner_text()
