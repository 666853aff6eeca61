"""Explanation tests: integrated gradients are exact where a closed form exists, complete on a
real tiny ranker, batch-invariant, and reasons never claim what no positive attribution backs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.explain import Explanation, IntegratedGradients, average_baseline, quadrature
from models.fit import fit_two_stage
from models.inputs import pad_left
from models.ranking import RANKING_FEATURES
from models.reasons import reason, reason_features
from models.values import feature_values
from pipelines.data.features import build_features
from tests.support.tiny import TINY, tiny_shop


# ---- closed form: a head linear in its inputs ---------------------------------------------------
class _LinearModel:
    """Duck-typed stand-in for the ranker: embed passes vectors through, head is one Dense."""

    widths = {"a": 3, "b": 1, "c": 5}

    def __init__(self) -> None:
        self.dense = tf.keras.layers.Dense(1, kernel_initializer="glorot_normal",
                                           bias_initializer=tf.keras.initializers.Constant(0.7))
        self.dense.build((None, sum(self.widths.values())))

    def embed(self, features):
        return {n: tf.cast(features[n], tf.float32) for n in self.widths}

    def head(self, embedded):
        return tf.squeeze(self.dense(tf.concat([embedded[n] for n in self.widths], -1)), -1)

    def weights_by_feature(self) -> dict[str, np.ndarray]:
        w = self.dense.kernel.numpy()[:, 0]
        bounds = np.cumsum([0, *self.widths.values()])
        return {n: w[s:e] for n, s, e in zip(self.widths, bounds[:-1], bounds[1:], strict=True)}


@pytest.mark.parametrize("baseline_kind", ["zero", "random"])
def test_attributions_match_the_closed_form_for_a_linear_head(baseline_kind: str) -> None:
    rng = np.random.default_rng(0)
    model = _LinearModel()
    x = {n: rng.normal(size=(6, d)).astype(np.float32) for n, d in model.widths.items()}
    base = {n: np.zeros(d, np.float32) if baseline_kind == "zero"
            else rng.normal(size=d).astype(np.float32) for n, d in model.widths.items()}
    ig = IntegratedGradients(model, "zero" if baseline_kind == "zero" else base, steps=8,
                             names=tuple(model.widths))

    explained = ig.explain(x)

    w = model.weights_by_feature()
    for i, e in enumerate(explained):
        expected = {n: float(w[n] @ (x[n][i] - base[n])) for n in model.widths}
        assert list(e.attributions) == list(model.widths), "reported in the model's order"
        for n in model.widths:
            assert e.attributions[n] == pytest.approx(expected[n], abs=1e-5)
        assert e.baseline_score == pytest.approx(
            float(model.head({n: tf.constant(base[n][None]) for n in base})[0]), abs=1e-5)
        assert e.score == pytest.approx(
            float(model.head({n: tf.constant(x[n][i : i + 1]) for n in x})[0]), abs=1e-5)
        assert abs(e.completeness_delta) < 1e-5


def test_unknown_baseline_and_missing_features_are_refused() -> None:
    with pytest.raises(ValueError, match="baseline"):
        IntegratedGradients(_LinearModel(), "mean", names=("a", "b", "c"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lacks"):
        IntegratedGradients(_LinearModel(), {"a": np.zeros(3)}, names=("a", "b", "c"))


# ---- a real tiny ranker -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=4)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, TINY)
    n_items = features.spec.items.size
    data = features.train
    # Every training shopper in their context, against every catalogue item (1920 pairs).
    pairs = {
        "user_id": np.repeat(data.user, n_items - 1),
        "history": np.repeat(data.history, n_items - 1, axis=0),
        "hour": np.repeat(data.hour, n_items - 1),
        "day_of_week": np.repeat(data.day_of_week, n_items - 1),
        "item_id": np.tile(np.arange(1, n_items, dtype=np.int32), len(data)),
        "purchases": np.repeat(pad_left(data.bags()), n_items - 1, axis=0),
    }
    average = average_baseline(fitted.ranker, pairs)
    return features, fitted.ranker, pairs, average, items


def _relative_deltas(explained: list[Explanation]) -> np.ndarray:
    delta = np.array([e.completeness_delta for e in explained])
    gap = np.array([e.score - e.baseline_score for e in explained])
    return np.abs(delta) / np.maximum(np.abs(gap), 1e-12)


def test_average_baseline_is_complete_at_the_default_8_gauss_legendre_nodes(tiny) -> None:
    _, ranker, pairs, average, _ = tiny
    ig = IntegratedGradients(ranker, average)

    explained = ig.explain(pairs)
    direct = ranker(pairs).numpy()

    assert (ig.steps, ig.method) == (8, "gausslegendre")
    assert np.mean(_relative_deltas(explained) <= 0.01) >= 0.99
    assert np.allclose([e.score for e in explained], direct, atol=1e-4), "f(x) is the ranker's"
    baseline_score = float(ranker.head({n: tf.constant(average[n][None]) for n in average})[0])
    assert all(e.baseline_score == pytest.approx(baseline_score, abs=1e-4) for e in explained)
    assert list(explained[0].attributions) == list(RANKING_FEATURES)


def test_zero_baseline_completeness_and_convergence(tiny) -> None:
    """The all-zero baseline lies far from any real input. With the ranker's smooth (GELU)
    layers the trapezoid rule meets the 1% completeness bar at 32 steps (with ReLU only about
    79% of pairs did) and its error shrinks as steps grow; Gauss-Legendre's 8 default nodes,
    under a third of the path points, are at least as accurate as the trapezoid's 32 steps."""
    _, ranker, pairs, _, _ = tiny
    coarse = IntegratedGradients(ranker, "zero", steps=32, method="trapezoid").explain(pairs)
    fine = IntegratedGradients(ranker, "zero", steps=128, method="trapezoid").explain(pairs)
    gauss = IntegratedGradients(ranker, "zero").explain(pairs)

    delta = np.median(np.abs([e.completeness_delta for e in coarse]))
    assert np.mean(_relative_deltas(coarse) <= 0.01) >= 0.99
    assert np.median(np.abs([e.completeness_delta for e in fine])) <= 0.5 * delta
    assert np.mean(_relative_deltas(gauss) <= 0.01) >= 0.99
    assert np.median(np.abs([e.completeness_delta for e in gauss])) <= delta
    assert [e.score for e in gauss] == pytest.approx([e.score for e in coarse], abs=1e-5)


def test_quadrature_weights_and_end_points() -> None:
    for method, steps, points in (("trapezoid", 4, 5), ("gausslegendre", 4, 6)):
        alphas, weights = quadrature(method, steps)
        assert len(alphas) == len(weights) == points
        assert (alphas[0], alphas[-1]) == (0.0, 1.0), "baseline first, input last"
        assert weights.sum() == pytest.approx(1.0)
        # exact for x^3 on [0, 1] (Gauss-Legendre exactly, the trapezoid close)
        assert float(weights @ alphas**3) == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="unknown method"):
        quadrature("simpson", 4)  # type: ignore[arg-type]


def test_explaining_k_items_equals_explaining_them_one_by_one(tiny) -> None:
    _, ranker, pairs, average, _ = tiny
    ig = IntegratedGradients(ranker, average)
    rows = np.arange(0, 110, 10)
    batch = ig.explain({k: v[rows] for k, v in pairs.items()})
    single = [ig.explain({k: v[[r]] for k, v in pairs.items()})[0] for r in rows]

    for together, alone in zip(batch, single, strict=True):
        assert together.score == pytest.approx(alone.score, abs=1e-4)
        for name in RANKING_FEATURES:
            assert together.attributions[name] == pytest.approx(alone.attributions[name],
                                                                abs=1e-4)
    (signature,), _ = ig._explain_ids.structured_input_signature
    assert all(spec.shape[0] is None for spec in signature.values()), "one graph for every k"


def test_feature_values_read_as_real_values(tiny) -> None:
    features, _, pairs, _, items = tiny
    spec, table = features.spec, features.table
    titles = dict(zip(items["item_id"], items["title"], strict=True))
    # Find a pair whose item is a branded lighting item and whose history is non-empty.
    i = next(i for i in range(len(pairs["item_id"]))
             if spec.items.values[pairs["item_id"][i]] == "I5" and (pairs["history"][i] > 0).all())
    row = {k: v[i] for k, v in pairs.items()}

    values = feature_values(spec, table, row, titles=titles)

    history = [spec.items.values[h] for h in row["history"]]
    same_category = sum(items.set_index("item_id").loc[h, "category"] == "lighting"
                        for h in history)
    assert values["title"] == "Red lamp 5" and values["category"] == "lighting"
    assert values["brand"] == "Nord" and values["history"] == "4 earlier purchases"
    assert values["category_affinity"] == f"{same_category} of your 4 recent purchases"
    assert values["category_count"] == str(same_category)
    assert values["price_band"].startswith(("low (", "mid (", "high ("))
    assert values["day_of_week"] in {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                     "Saturday", "Sunday"}
    assert values["popularity"].endswith("% of purchases")
    unbranded = feature_values(spec, table, row | {"item_id": spec.items.index()["I7"]})
    assert unbranded["brand"] == "unknown" and unbranded["title"] == "I7", "no catalogue: the id"


def test_reasons_on_the_real_ranker_only_use_positive_features(tiny) -> None:
    features, ranker, pairs, average, _ = tiny
    rows = np.arange(0, len(pairs["item_id"]), 37)
    explained = IntegratedGradients(ranker, average).explain({k: v[rows] for k, v in
                                                              pairs.items()})
    stated = 0
    for r, e in zip(rows, explained, strict=True):
        values = feature_values(features.spec, features.table, {k: v[r] for k, v in pairs.items()})
        used = reason_features(e, values)
        assert all(e.attributions[f] > 0 for f in used)
        assert len(used) <= 2
        stated += bool(used)
    assert stated > 0, "some pair gets a real reason"


# ---- reasons ----------------------------------------------------------------------------------
VALUES = {
    "category": "lighting", "category_count": "3", "brand": "Nord", "brand_count": "2",
    "price_band": "mid (10.00-20.00)", "price_band_count": "4", "band": "mid",
    "band_low": "10.0", "band_high": "20.0", "popularity_share": "1.5%", "share": "0.015",
    "history_count": "10", "hour": "14:00-15:00", "hour_of_day": "14",
    "day_of_week": "Monday", "weekday": "0",
}
FALLBACK = "Recommended for you."


def _explanation(**attributions: float) -> Explanation:
    full = {name: 0.0 for name in RANKING_FEATURES} | attributions
    total = sum(full.values())
    return Explanation(score=total, baseline_score=0.0, attributions=full, completeness_delta=0.0)


def test_reasons_state_only_positive_features_strongest_first_with_real_values() -> None:
    e = _explanation(brand_affinity=-0.9, category_affinity=0.3, price_band_affinity=0.5,
                     popularity=-0.2, item_id=0.8)

    text = reason(e, VALUES)

    assert text == "In your usual price range (mid: 10.00 to 20.00). You often buy lighting."
    assert reason_features(e, VALUES) == ["price_band_affinity", "category_affinity"]
    assert "Nord" not in text and "Popular" not in text, "negative features never stated"
    assert reason(e, VALUES, max_sentences=1) == "In your usual price range (mid: 10.00 to 20.00)."


def test_reasons_skip_unknown_or_zero_values_and_fall_back_neutrally() -> None:
    unbranded = VALUES | {"brand": "unknown", "brand_count": "0"}
    e = _explanation(brand_affinity=0.9, day_of_week=0.1)
    assert reason(e, unbranded) == "Often bought on Monday."
    assert reason(e, VALUES).startswith("From Nord, which you have bought 2 times.")

    never_sold = VALUES | {"popularity_share": "0%", "share": "0.0"}
    assert reason(_explanation(popularity=0.4), never_sold) == FALLBACK
    cold = VALUES | {"history_count": "0", "category_count": "0"}
    assert reason(_explanation(history=0.5, category_affinity=0.2), cold) == FALLBACK
    assert reason(_explanation(item_id=0.5, user_id=0.3), VALUES) == FALLBACK, "no template"
    assert reason(_explanation(popularity=-0.1, category_affinity=-0.2), VALUES) == FALLBACK
    assert reason_features(_explanation(popularity=-0.1), VALUES) == []


def test_shared_sentences_are_said_once() -> None:
    e = _explanation(history=0.4, retrieval_score=0.3, hour=0.1)
    assert reason(e, VALUES) == (
        "Similar to items you bought before. Often bought at this time of day (14:00-15:00)."
    )
    assert reason_features(e, VALUES) == ["history", "hour"]


def test_a_title_s_own_full_stop_ends_the_sentence_once() -> None:
    e = _explanation(history_items=0.9, price_band_affinity=0.2)
    text = reason(e, VALUES | {"bought": "LUNCH BAG  BLACK SKULL."})
    assert text == ("Because you bought LUNCH BAG  BLACK SKULL. "
                    "In your usual price range (mid: 10.00 to 20.00).")


def test_the_placeholder_category_is_never_stated() -> None:
    """A source without categories files every item under "other": not a taste to name."""
    e = _explanation(category_affinity=0.9, hour=0.1)
    assert reason_features(e, VALUES | {"category": "other"}) == ["hour"]
    assert reason_features(e, VALUES) == ["category_affinity", "hour"]
