"""The planted-preference rule of explain-check: which reasons recover a planted preference."""

from __future__ import annotations

from models.explain import Explanation
from pipelines.evaluation.explain_check import _planted_hit, _reason_order

# Items 1..3: 1 and 2 are books by Inkwell, 3 is a lamp by Nord.
VALUES = {"category": [None, "books", "books", "lighting"],
          "brand": [None, "Inkwell", "Inkwell", "Nord"],
          "price_band": [None, "low", "high", "low"]}
TRUTH = {"u": {"category": "books", "brand": "Inkwell", "price_band": "mid"}}


def _explanation(**attributions: float) -> Explanation:
    return Explanation(score=0.0, baseline_score=0.0, attributions=attributions,
                       completeness_delta=0.0)


def test_a_named_past_purchase_sharing_the_planted_attribute_recovers_it() -> None:
    exp = _explanation(history_items=2.0, hour=0.5, category_affinity=0.1)
    # Recommended book 1; the strongest reason is past purchase 2, another Inkwell book.
    assert _planted_hit(VALUES, TRUTH, "u", 1, _reason_order(exp, {2: 1.5, 3: 0.5})) is True
    # The strongest past purchase is the lamp: it shares nothing planted with the book.
    assert _planted_hit(VALUES, TRUTH, "u", 1, _reason_order(exp, {3: 1.5, 2: -0.2})) is False


def test_named_features_count_and_unmatched_items_are_not_judged() -> None:
    exp = _explanation(brand_affinity=1.0, hour=0.5, history_items=0.0)
    assert _planted_hit(VALUES, TRUTH, "u", 1, _reason_order(exp, {})) is True
    assert _planted_hit(VALUES, TRUTH, "u", 3, _reason_order(exp, {})) is None
    assert _planted_hit(VALUES, TRUTH, "nobody", 1, _reason_order(exp, {})) is None


def test_purchases_that_pushed_the_score_down_are_never_reasons() -> None:
    exp = _explanation(hour=-0.1, day_of_week=-0.2, history_items=-1.0)
    assert 2 not in _reason_order(exp, {2: -1.0})
