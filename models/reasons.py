"""Everything a shopper reads: reasons backed by attributions, as facts rendered in a language.

A sentence is only ever said for a feature that pushed this item's score *up* (positive
attribution), strongest first, and only when the fact it states is true for this shopper and item
(its values are known and its counts are not zero). Nothing qualifying means a neutral line, never
a guess. A reason is first chosen as facts (``said``: which templates, with which titles, counts,
price bounds, hour and weekday), then rendered through ``Words`` (``render``): so the reason in
every language states the same facts, and a language is a message catalog, not code. The English
texts here are the catalogs' message ids (``make i18n`` extracts them); ``PLAIN`` renders them
without a catalog. This module does no I/O: catalogs are loaded by ``contracts.i18n``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from models.feature_spec import DAY_NAMES

if TYPE_CHECKING:
    from models.explain import Explanation


def N_(message: str) -> str:
    """Marks a message for ``make i18n``'s extraction; it is translated where it is rendered."""
    return message


class Words(Protocol):
    """One language's messages and value formats (``contracts.i18n.CatalogWords``)."""

    def gettext(self, message: str) -> str: ...
    def ngettext(self, singular: str, plural: str, n: int) -> str: ...
    def pgettext(self, context: str, message: str) -> str: ...
    def price(self, amount: float) -> str: ...
    def percent(self, share: float) -> str: ...
    def hour(self, hour: int) -> str: ...
    def weekday(self, day: int) -> str: ...
    def listed(self, parts: Sequence[str]) -> str: ...


class Template(NamedTuple):
    text: str  # the message id; placeholders name the sentence's facts
    plural: str | None = None  # with ``text``, ngettext's pair, chosen by the fact ``count``
    needs: tuple[str, ...] = ()  # keys of ``feature_values`` that must be known and non-zero


Counted = Template  # a template with a plural form (its own name, for the extraction)

TEMPLATES: dict[str, Template] = {
    # The wide item-item part, attributed per past purchase: only the positive ones are named.
    "history_items": Template("Because you bought {bought}", needs=("bought",)),
    "category_affinity": Template("You often buy {category}",
                                  needs=("category", "category_count")),
    "brand_affinity": Counted("From {brand}, which you have bought once",
                               "From {brand}, which you have bought {count} times",
                               needs=("brand", "brand_count")),
    "price_band_affinity": Template("In your usual price range ({band}: {range})",
                                    needs=("price_band", "price_band_count")),
    "popularity": Template("Popular with other shoppers ({share} of purchases)",
                           needs=("popularity_share",)),
    "history": Template("Similar to items you bought before", needs=("history_count",)),
    "retrieval_score": Template("Similar to items you bought before", needs=("history_count",)),
    "hour": Template("Often bought at this time of day ({hour})", needs=("hour",)),
    "day_of_week": Template("Often bought on {day}", needs=("day_of_week",)),
    "tag_affinity": Template("You often choose {tag}", needs=("tag", "tag_count")),
    "rating": Template("Highly rated by other shoppers", needs=("rated_high",)),
    # Not features: the neutral line, and the notes of best sellers and similar items.
    "fallback": Template("Recommended for you"),
    "popular_in": Template("Popular with shoppers in {category} ({share} of purchases). We do "
                           "not know your purchases yet, so these are best sellers"),
    "popular": Template("Popular with shoppers in the shop ({share} of purchases). We do not "
                        "know your purchases yet, so these are best sellers"),
    "similar": Template("Same {listed}; often chosen by the same shoppers"),
    "similar_none": Template("Often chosen by the same shoppers"),
}
BANDS = {"low": N_("low"), "mid": N_("mid"), "high": N_("high")}
RANGES = {"low": N_("up to {high}"), "mid": N_("{low} to {high}"), "high": N_("over {low}")}
SIMILAR_LABELS = {"category": N_("category"), "brand": N_("brand"),
                  "price_band": N_("price band")}
# Plain labels of the attribution chart a shopper opens ("why this?"): never feature names.
LABELS = {
    "user_id": N_("You"), "history": N_("What you bought before"), "item_id": N_("This item"),
    "category": N_("Its category"), "brand": N_("Its brand"), "price_band": N_("Its price range"),
    "title": N_("Its name"), "price": N_("Its price"), "hour": N_("Time of day"),
    "day_of_week": N_("Day of the week"), "category_affinity": N_("Categories you often buy"),
    "brand_affinity": N_("Brands you often buy"),
    "price_band_affinity": N_("Prices you usually pay"), "popularity": N_("Popular with shoppers"),
    "retrieval_score": N_("Like what you bought"), "trend": N_("Selling well lately"),
    "tags": N_("Its style"), "tag_affinity": N_("Styles you often choose"),
    "rating": N_("Other shoppers' ratings"), "shopper": N_("Your profile"),
    "history_items": N_("Items you bought"),
}
FULL_STOP = N_("{sentence}.")  # a sentence's end, said once
JOINED = N_("{first} {second}")  # two sentences in a row
QUOTED = N_("{title}")  # a title as a sentence names it (Chinese: 《{title}》)
_ENDS = (".", "!", "?", "\u3002", "\uff01", "\uff1f")  # a title's own full stop counts

# "other" is the contract's placeholder category (a source without categories), not a fact.
_EMPTY = {"", "unknown", "none", "other"}


class Sentence(NamedTuple):
    """One sentence of a reason as facts: which template says it, with which values."""

    key: str  # a ``TEMPLATES`` key
    facts: Mapping[str, Any]


Said = tuple[Sentence, ...]


class _Plain:
    """English from the message ids themselves, values as the model's data has them."""

    def gettext(self, message: str) -> str:
        return message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural

    def pgettext(self, context: str, message: str) -> str:
        return message

    def price(self, amount: float) -> str:
        return f"{amount:.2f}"

    def percent(self, share: float) -> str:
        return percent(share)

    def hour(self, hour: int) -> str:
        return f"{hour:02d}:00-{(hour + 1) % 24:02d}:00"

    def weekday(self, day: int) -> str:
        return DAY_NAMES[day]

    def listed(self, parts: Sequence[str]) -> str:
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


PLAIN: Words = _Plain()


def reason(
    explanation: Explanation,
    values: Mapping[str, str],
    max_sentences: int = 2,
    min_attribution: float = 0.0,
    words: Words = PLAIN,
) -> str:
    """One or two sentences naming the strongest positive features, or a neutral fallback."""
    return render(said(explanation, values, (), max_sentences, min_attribution), words)


def reason_features(
    explanation: Explanation,
    values: Mapping[str, str],
    max_sentences: int = 2,
    min_attribution: float = 0.0,
) -> list[str]:
    """The features ``reason`` states, in order: empty when it falls back."""
    return [s.key for s in said(explanation, values, (), max_sentences, min_attribution)
            if s.key != "fallback"]


def said(
    explanation: Explanation,
    values: Mapping[str, str],
    bought: Sequence[str] = (),
    max_sentences: int = 2,
    min_attribution: float = 0.0,
) -> Said:
    """The reason as facts: the strongest positive features whose facts are true, at most
    ``max_sentences``, or the neutral line. ``bought``: the titles of the purchases credited
    (default ``values["bought"]`` as one title)."""
    chosen: list[Sentence] = []
    for feature, attribution in explanation.sorted_attributions():
        if len(chosen) >= max_sentences or not attribution > max(min_attribution, 0.0):
            break  # sorted: everything after is weaker
        template = TEMPLATES.get(feature)
        # A feature's template needs its facts known; the notes (no needs) are no features.
        if template is None or not template.needs or \
                not all(_known(values.get(k)) for k in template.needs):
            continue
        sentence = Sentence(feature, _facts(feature, values, bought))
        if all((TEMPLATES[s.key].text, s.facts) != (template.text, sentence.facts)
               for s in chosen):
            chosen.append(sentence)
    return tuple(chosen) or (Sentence("fallback", {}),)


def _facts(feature: str, values: Mapping[str, str], bought: Sequence[str]) -> dict[str, Any]:
    """What the feature's sentence states, as raw values (no language yet)."""
    if feature == "history_items":
        return {"bought": tuple(bought) or (values["bought"],)}
    if feature in ("category_affinity", "tag_affinity"):
        name = feature.split("_")[0]
        return {name: values[name]}
    if feature == "brand_affinity":
        return {"brand": values["brand"], "count": int(values["brand_count"])}
    if feature == "price_band_affinity":
        return {"band": values.get("band", "unknown"), "low": _number(values.get("band_low")),
                "high": _number(values.get("band_high"))}
    if feature == "popularity":
        return {"share": float(values["share"])}
    if feature == "hour":
        return {"hour": int(values["hour_of_day"])}
    if feature == "day_of_week":
        return {"day": int(values["weekday"])}
    return {}


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def popular_said(share: float, category: str | None = None) -> Said:
    """Why an unknown shopper sees a best seller: there is no history to attribute a score to."""
    if category:
        return (Sentence("popular_in", {"share": share, "category": category}),)
    return (Sentence("popular", {"share": share}),)


def similar_said(shared: Sequence[tuple[str, str]]) -> Said:
    """Why an item is shown beside another: the attributes they share, and co-purchase."""
    if not shared:
        return (Sentence("similar_none", {}),)
    return (Sentence("similar", {"shared": tuple(shared)}),)


def render(said: Said, words: Words = PLAIN) -> str:
    """The facts as one language says them: each sentence ended once, then joined."""
    text = ""
    for sentence in said:
        one = _sentence(sentence, words)
        if not one.endswith(_ENDS):
            one = words.gettext(FULL_STOP).format(sentence=one)
        text = one if not text else words.gettext(JOINED).format(first=text, second=one)
    return text


def _sentence(sentence: Sentence, words: Words) -> str:
    template, facts = TEMPLATES[sentence.key], sentence.facts
    text = (words.ngettext(template.text, template.plural, facts["count"])
            if template.plural else words.gettext(template.text))
    return text.format_map(_placeholders(facts, words))


def _placeholders(facts: Mapping[str, Any], words: Words) -> dict[str, str]:
    """Each fact as the language writes it."""
    out: dict[str, str] = {}
    for name, value in facts.items():
        if name == "bought":
            quoted = words.gettext(QUOTED)
            out[name] = words.listed([quoted.format(title=t) for t in value])
        elif name in ("category", "tag"):
            out[name] = words.pgettext(name, value)
        elif name == "share":
            out[name] = words.percent(value)
        elif name == "hour":
            out[name] = words.hour(value)
        elif name == "day":
            out[name] = words.weekday(value)
        elif name == "band":
            out[name] = words.gettext(BANDS.get(value, value))
            out["range"] = _range(value, facts.get("low"), facts.get("high"), words)
        elif name == "shared":
            out["listed"] = words.listed([shared_part(n, v, words) for n, v in value])
        elif name not in ("low", "high"):
            out[name] = str(value)
    return out


def _range(band: str, low: float | None, high: float | None, words: Words) -> str:
    """The band's bounds in the shop's currency ("up to £10.00"), or "unknown"."""
    if band not in RANGES or (band != "low" and low is None) or (band != "high" and high is None):
        return words.gettext("unknown")
    return words.gettext(RANGES[band]).format(
        low=words.price(low) if low is not None else "",
        high=words.price(high) if high is not None else "")


def shared_part(name: str, value: str, words: Words) -> str:
    """One attribute two similar items share: "category (kitchenware)"."""
    if name == "category":
        value = words.pgettext("category", value)
    elif name == "price_band":
        value = words.gettext(BANDS.get(value, value))
    return words.gettext("{name} ({value})").format(
        name=words.gettext(SIMILAR_LABELS[name]), value=value)


def _known(value: str | None) -> bool:
    if value is None or value.strip().lower() in _EMPTY:
        return False
    try:
        return float(value.strip().rstrip("%")) != 0.0
    except ValueError:
        return True


def percent(share: float) -> str:
    """A share as shoppers read it: ``0.0123`` -> ``1.2%``."""
    return "0%" if share <= 0 else f"{share * 100:.2g}%"
