"""Words per request: the locale an answer is in, and the /explore page in every language.

``chosen`` picks the locale from the body's ``locale`` or the ``Accept-Language`` header (cached
per distinct pair by ``contracts.i18n.Locales``), so a request pays a dictionary lookup for it.

The page is one static file; what a shopper reads on it (besides the answers' own reasons, names
and prices) is here, marked for ``make i18n``, and put into the page for every locale at start-up
(with each locale's own name for the selector), so switching language costs the page no request
beyond the answer itself. The engineer's view (feature names, scores) stays in English.
"""

from __future__ import annotations

import json

from fastapi import Request

from contracts.i18n import Choice, Locales
from models.reasons import N_

PAGE_TEXT = {
    "for_you": N_("Recommended for you"),
    "why": N_("Why this?"),
    "hide": N_("Hide"),
    "why_title": N_("What made us suggest it"),
    "raised": N_("made it more likely"),
    "lowered": N_("made it less likely"),
    "no_price": N_("Price unknown"),
    "best_sellers": N_("Best sellers: we do not know your purchases yet"),
    "empty": N_("Nothing matches these filters."),
    "image": N_("Product image"),
    "language": N_("Language"),
    "browser": N_("As the browser asks"),
    "recent": N_("Your recent purchases"),
    "named": N_("Highlighted: purchases a reason names."),
    "none_bought": N_("No purchases known yet."),
}
TEXT_SLOT, LOCALES_SLOT = "/*SHOPREC_TEXT*/{}", "/*SHOPREC_LOCALES*/[]"


def explore_page(html: str, locales: Locales) -> str:
    """The page with every locale's words and names in it (``</`` escaped: inside a script)."""
    text = {w.tag: {key: w.gettext(message) for key, message in PAGE_TEXT.items()}
            for w in locales.words.values()}
    names = [[w.tag, w.locale.get_display_name(w.locale) or w.tag]
             for w in sorted(locales.words.values(), key=lambda w: w.tag)]
    return (html.replace(TEXT_SLOT, _script_json(text))
            .replace(LOCALES_SLOT, _script_json(names)))


def _script_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def chosen(locales: Locales, request: Request, asked: str | None) -> Choice:
    """The body's ``locale`` first, else the request's ``Accept-Language``, else the default."""
    return locales.choose(asked, request.headers.get("accept-language"))


def in_locale(choice: Choice) -> dict:
    """What an answer says about its language."""
    return {"locale": choice.tag, "locale_fallback": choice.fallback}
