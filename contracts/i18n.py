"""The shopper's language: gettext catalogs, the locale each request gets, and answers in it.

Catalogs live in ``contracts/locales/<locale>/LC_MESSAGES/``: ``shoprec`` (the sentences, from
``make i18n``'s extraction) and ``catalogue`` (the shop's category and tag names, kept by hand).
A locale is a folder there: adding a language is adding its catalogs, no code. Everything that can
be done ahead is done when ``Locales.load`` runs (once per process): catalogs read, weekday and
hour names and chart labels worded; prices and shares are formatted once per value and kept. A
request then costs a header lookup (cached) and dictionary lookups per sentence.
"""

from __future__ import annotations

import contextlib
import datetime
import gettext
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_time, get_day_names
from babel.lists import format_list
from babel.numbers import format_currency, format_percent

from models.reasons import LABELS, render

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).with_name("locales")
DOMAIN, CATALOGUE = "shoprec", "catalogue"
MAX_HEADER = 512  # longer Accept-Language headers are read no further
MAX_CHOICES = 4096  # distinct (locale, header) pairs whose answer is kept


def tag_of(locale: str | Locale) -> str:
    """The BCP 47 tag answers name a locale by: ``zh_CN`` -> ``zh-CN``."""
    return str(locale).replace("_", "-")


class CatalogWords:
    """One locale's ``Words``: messages from its catalogs, values formatted by Babel."""

    def __init__(self, tag: str, translations: gettext.NullTranslations, currency: str) -> None:
        locale = Locale.parse(tag.replace("-", "_"))
        self.locale, self.tag, self.currency = locale, tag, currency
        # Bound methods of the compiled catalogs: a dictionary lookup per message.
        self.gettext = translations.gettext
        self.ngettext = translations.ngettext
        self.pgettext = translations.pgettext
        self._days = [get_day_names("wide", locale=locale)[d] for d in range(7)]
        self._hours = [f"{format_time(datetime.time(h), 'short', locale=locale)}\u2013"
                       f"{format_time(datetime.time((h + 1) % 24), 'short', locale=locale)}"
                       for h in range(24)]
        self.labels = {feature: self.gettext(label) for feature, label in LABELS.items()}
        self._prices: dict[float, str] = {}
        self._shares: dict[float, str] = {}

    def price(self, amount: float) -> str:
        text = self._prices.get(amount)
        if text is None:
            text = self._prices[amount] = format_currency(amount, self.currency,
                                                          locale=self.locale)
        return text

    def percent(self, share: float) -> str:
        text = self._shares.get(share)
        if text is None:  # two significant digits, as ``models.reasons.percent``
            rounded = float(f"{share * 100:.2g}") / 100 if share > 0 else 0.0
            text = self._shares[share] = format_percent(rounded, "#,##0.###%",
                                                        locale=self.locale)
        return text

    def hour(self, hour: int) -> str:
        return self._hours[hour]

    def weekday(self, day: int) -> str:
        return self._days[day]

    def listed(self, parts: Sequence[str]) -> str:
        return format_list(list(parts), locale=self.locale)

    def category(self, name: str) -> str:
        """The catalogue's name for a category in this language, else as given."""
        return self.pgettext("category", name)


@dataclass(frozen=True)
class Choice:
    """The locale an answer is in, and whether the one asked for was unavailable."""

    words: CatalogWords
    fallback: bool

    @property
    def tag(self) -> str:
        return self.words.tag


class Locales:
    """Every locale with a catalog, loaded once; ``choose`` picks one per request."""

    def __init__(self, words: dict[str, CatalogWords], default: str) -> None:
        self.words = words  # by lower-case tag
        if default.lower().replace("_", "-") not in words:
            raise ValueError(f"the shop's default locale {default!r} (SHOPREC_SHOP_LOCALE) has "
                             f"no catalog; there are: {', '.join(self.tags)}")
        self.default = words[default.lower().replace("_", "-")]
        self._choices: dict[tuple[str | None, str | None], Choice] = {}

    @classmethod
    def load(cls, default: str = "en", currency: str = "GBP",
             folder: Path = LOCALES_DIR) -> Locales:
        """Every ``folder/<locale>/LC_MESSAGES/shoprec.mo``, with its ``catalogue.mo`` if any."""
        words = {}
        for path in sorted(folder.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")):
            name = path.parent.parent.name
            translations = gettext.translation(DOMAIN, folder, [name])
            # Without a catalogue catalog, categories read as the data has them.
            with contextlib.suppress(FileNotFoundError):
                translations.add_fallback(gettext.translation(CATALOGUE, folder, [name]))
            words[tag_of(name).lower()] = CatalogWords(tag_of(name), translations, currency)
        return cls(words, default)

    @property
    def tags(self) -> list[str]:
        return sorted(w.tag for w in self.words.values())

    def choose(self, explicit: str | None = None, header: str | None = None) -> Choice:
        """``explicit`` (a request's ``locale``) first, else the best ``Accept-Language`` match;
        the shop default when neither names an available locale (``fallback`` when one was
        asked for). Never raises: a malformed header counts as asking for nothing available."""
        key = (explicit, header[:MAX_HEADER] if header else header)
        known = self._choices.get(key)
        if known is None:
            known = self._choose(*key)
            if len(self._choices) >= MAX_CHOICES:
                self._choices.clear()  # bounded: hostile headers cannot grow it
            self._choices[key] = known
        return known

    def _choose(self, explicit: str | None, header: str | None) -> Choice:
        asked = [explicit] if explicit is not None else list(_ranges(header or ""))
        if not asked or asked == ["*"]:
            return Choice(self.default, fallback=bool(header) and not asked)
        for tag in asked:
            if tag == "*":
                return Choice(self.default, fallback=False)
            found = self._match(tag)
            if found is not None:
                return Choice(found, fallback=False)
        return Choice(self.default, fallback=True)

    def _match(self, tag: str) -> CatalogWords | None:
        exact = self.words.get(tag.lower().replace("_", "-"))
        if exact is not None:
            return exact
        try:
            asked = Locale.parse(tag.replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            return None
        script = _script(asked)
        for words in self.words.values():
            if words.locale.language == asked.language and _script(words.locale) == script:
                return words  # en-GB reads en; zh-SG reads zh-CN, zh-TW (Hant) does not
        return None


def _script(locale: Locale) -> str | None:
    """The script a locale writes in, explicit or likely (``zh-TW`` is Hant, ``zh`` Hans)."""
    if locale.script:
        return locale.script
    likely = get_global("likely_subtags")
    full = likely.get(f"{locale.language}_{locale.territory}") if locale.territory else None
    full = full or likely.get(locale.language) or ""
    parts = full.split("_")
    return parts[1] if len(parts) > 2 else None


def _ranges(header: str) -> Iterable[str]:
    """An ``Accept-Language`` header's language ranges, best first (q=0 and junk dropped)."""
    ranked = []
    for position, part in enumerate(header[:MAX_HEADER].split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or len(tag) > 35 or not all(c.isascii() and (c.isalnum() or c in "-_*")
                                               for c in tag):
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if 0 < q <= 1:
            ranked.append((-q, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def localise(items: Sequence[dict], words: CatalogWords) -> list[dict]:
    """Answer items (``contracts.answers``' dicts) as the shopper reads them in ``words``'
    language: the reason rendered from its facts, the category's name, the price in the shop's
    currency and each attribution's plain label. New dicts: pages may be shared."""
    out = []
    for item in items:
        shown = dict(item)
        if "category" in item:
            shown["category_name"] = words.category(item["category"])
        if "price" in item:
            shown["price_text"] = words.price(item["price"]) if item["price"] is not None \
                else None
        if "said" in item:
            shown["reason"] = render(shown.pop("said"), words)
        note = item.get("explanation")
        if note is not None:
            note = shown["explanation"] = {**note, "reason": render(note["said"], words)}
            del note["said"]
            if "attributions" in note:
                note["attributions"] = [a | {"label": words.labels.get(a["feature"],
                                                                       a["feature"])}
                                        for a in note["attributions"]]
        out.append(shown)
    return out
