"""The faithfulness suite for explanations: are attributions tied to the score, and to the model?

Figures (one JSON object): completeness (IG's attributions add up to score - baseline score),
deletion (removing the top-attributed feature hurts more than removing a random one), history
deletion (removing the most-attributed past purchase from the shopper's history lowers the score
more than removing a random other one: what "because you bought X" promises), the counterfactual
check in the spirit of ACCENT / CountER (removing the past purchases a reason names takes the
item out of the top k, far more often than removing as many random past purchases), planted
preferences recovered (synthetic data), the Adebayo et al. (2018) randomisation sanity check, and
the time to explain 10 items.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from contracts.storage import DataPath, location
from models.ranking import PURCHASES, RANKING_FEATURES, WIDE

PLANTED_FEATURES = {
    "category": ("category", "category_affinity"),
    "brand": ("brand", "brand_affinity"),
    "price_band": ("price_band", "price_band_affinity"),
}


def load_ground_truth(data_dir: DataPath) -> dict[str, dict[str, str]] | None:
    """The synthetic shop's planted preferences per pseudonymised shopper, when the data
    directory holds them (``reference/ground_truth.json``); ``None`` for real data."""
    path = location(data_dir) / "reference" / "ground_truth.json"
    return json.loads(path.read_text(encoding="utf-8"))["users"] if path.is_file() else None


def explain_check(
    recommender,
    users: list[str],
    k: int = 10,
    seed: int = 0,
    ground_truth: dict[str, dict[str, str]] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    import tensorflow as tf

    from models.explain import STEPS, IntegratedGradients, average_baseline
    from models.purchase_attribution import purchase_attributions
    from models.queries import Query

    rng = np.random.default_rng(seed)
    rec = recommender
    ranker = rec.ranker
    ranked = rec.recommend_many([Query(user, k) for user in users])
    samples = [(user, r.items) for user, r in zip(users, ranked, strict=True) if len(r.items)]
    if not samples:
        raise ValueError("no recommendations to explain for the sampled users")
    reference = rec.typical_pairs(seed=seed)
    baseline = average_baseline(ranker, reference)
    steps = steps or STEPS
    ig = IntegratedGradients(ranker, baseline, steps=steps)

    complete, deletion_wins, planted_hits, planted_total, latencies = [], [], 0, 0, []
    history_wins: list[bool] = []
    removals: dict[str, list[bool]] = {"named": [], "random": []}
    planted_values = _planted_values(rec) if ground_truth is not None else {}
    detailed: list[list[float]] = []
    attributions = []
    for user, items in samples:
        features = rec.pair_features([user], [items])
        started = time.perf_counter()
        explanations = ig.explain(features)
        latencies.append((time.perf_counter() - started) * 1000)
        embedded = {n: t.numpy() for n, t in ranker.embed(
            {k: tf.constant(v) for k, v in features.items()}).items()}
        for row, exp in enumerate(explanations):
            gap = abs(exp.score - exp.baseline_score)
            complete.append(abs(exp.completeness_delta) <= 0.01 * max(gap, 1e-9))
            order = sorted(exp.attributions, key=exp.attributions.get, reverse=True)
            top, other = order[0], rng.choice(order[1:])
            drops = []
            for name in (top, other):
                changed = {n: v[row : row + 1].copy() for n, v in embedded.items()}
                changed[name] = np.asarray(baseline[name], np.float32)[None, ...]
                score = float(ranker.head({n: tf.constant(v) for n, v in changed.items()})[0])
                drops.append(exp.score - score)
            deletion_wins.append(drops[0] > drops[1])
            won = _history_deletion(rec, features, row, exp, rng)
            if won is not None:
                history_wins.append(won)
            attributions.append([exp.attributions[n] for n in RANKING_FEATURES])
            detailed.append(_detailed(exp))
            purchases = features[rec.wide_input][row]
            named = [i for i, _ in rec.bought_because(purchases, exp)]
            outcome = _counterfactual(rec, user, features, row, named, k, rng)
            if outcome is not None:
                removals["named"].append(outcome[0])
                removals["random"].append(outcome[1])
            if ground_truth is not None:
                reasons = _reason_order(exp, purchase_attributions(purchases, exp.slots))
                hit = _planted_hit(planted_values, ground_truth, user, int(items[row]), reasons)
                if hit is not None:
                    planted_total += 1
                    planted_hits += hit
    figures = {
        "explanations": len(complete),
        "completeness_ok_rate": float(np.mean(complete)),
        "deletion_win_rate": float(np.mean(deletion_wins)),
        "history_deletion_win_rate": float(np.mean(history_wins)) if history_wins else None,
        "history_deletions": len(history_wins),
        "planted_top2_rate": planted_hits / planted_total if planted_total else None,
        "counterfactual_pn": _share(removals["named"]),
        "counterfactual_pn_random": _share(removals["random"]),
        "counterfactual_removals": len(removals["named"]),
        **_randomisation(ranker, samples, rec, reference, steps, detailed),
        "explain_10_items_ms_median": float(np.median(latencies[1:] or latencies)),
        "explain_10_items_ms_p99": float(np.percentile(latencies[1:] or latencies, 99)),
        "global_importance": dict(zip(RANKING_FEATURES,
                                      np.abs(np.array(attributions)).mean(0).tolist(),
                                      strict=True)),
    }
    return figures


def _history_deletion(rec, features, row, exp, rng) -> bool | None:
    """Does removing the most-attributed past purchase (from the record and the recent window)
    lower the full model's score more than removing a random other one? None with fewer than
    two distinct items."""
    from models.purchase_attribution import purchase_attributions

    totals = purchase_attributions(features[rec.wide_input][row], exp.slots)
    totals.pop(0, None)
    if len(totals) < 2:
        return None
    top = max(totals, key=totals.get)
    other = int(rng.choice([i for i in totals if i != top]))
    pair = {k: np.repeat(v[row : row + 1], 2, axis=0) for k, v in features.items()}
    for i, removed in enumerate((top, other)):
        _remove(pair, i, [removed])
    scores = rec.rank_pairs({k: v for k, v in pair.items() if k != "item_id"},
                            pair["item_id"][:, None]).reshape(-1)
    return bool(exp.score - scores[0] > exp.score - scores[1])


def _counterfactual(rec, user, features, row, named, k, rng) -> tuple[bool, bool] | None:
    """(Does removing the named past purchases take the item out of the shopper's top k, does
    removing as many random other past purchases?) None when nothing is named or too few other
    purchases remain to draw from."""
    purchases = features[rec.wide_input][row]
    others = sorted(set(purchases[purchases != 0].tolist()) - set(named))
    if not named or len(others) < len(named):
        return None
    drawn = [int(i) for i in rng.choice(others, size=len(named), replace=False)]
    query = {k_: np.repeat(v[row : row + 1], 2, axis=0) for k_, v in features.items()
             if k_ != "item_id"}
    for i, removed in enumerate((named, drawn)):
        _remove(query, i, removed)
    bought = rec.purchased.get(user, np.zeros(0, np.int64))
    items, scores = rec.top_k(query, [bought, bought], k)
    item = int(features["item_id"][row])
    gone = [item not in items[i][np.isfinite(scores[i])].tolist() for i in range(2)]
    return gone[0], gone[1]


def _remove(features: dict[str, np.ndarray], row: int, items: list[int]) -> None:
    """Take ``items`` out of one row's past purchases, in the record (``purchases``) and in the
    recent window (``history``), keeping both right-aligned and as wide."""
    for name in ("history", PURCHASES):
        values = features[name][row]
        kept = values[~np.isin(values, items)]
        features[name][row] = np.r_[np.zeros(len(values) - len(kept), np.int32), kept]


def _share(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def _reason_order(exp, purchases: dict[int, float]) -> list[str | int]:
    """What a reason can name, strongest first: each named feature but the wide one, which is
    split into its past purchases with positive attribution (item ids), as served reasons are."""
    entries: dict[str | int, float] = {n: v for n, v in exp.attributions.items() if n != WIDE}
    entries.update({item: v for item, v in purchases.items() if v > 0})  # reasons name these
    return sorted(entries, key=entries.get, reverse=True)


def _detailed(exp) -> list[float]:
    """Attributions as the randomisation check compares them: each named feature, with the wide
    item-item feature split into its past purchases (each is its own input)."""
    return [exp.attributions[n] for n in RANKING_FEATURES if n != WIDE] + list(exp.slots)


def _planted_hit(values, truth, user, item, order: list[str | int]) -> bool | None:
    """Is one of the two strongest reasons a planted preference the item matches? A named
    feature counts when it is that preference's (``PLANTED_FEATURES``); a past purchase counts
    when it shares the planted attribute with the item (the preference showing through the
    item-item signal: "because you bought <another book>"). None: the item matches none."""
    planted = truth.get(user)
    if planted is None:
        return None
    matched = [a for a in PLANTED_FEATURES if values[a][item] == planted[a]]
    if not matched:
        return None
    for entry in order[:2]:
        if isinstance(entry, str):
            if any(entry in PLANTED_FEATURES[a] for a in matched):
                return True
        elif any(values[a][entry] == values[a][item] for a in matched):
            return True
    return False


def _planted_values(rec) -> dict[str, list[str | None]]:
    """Per vocabulary item id, its category, brand and price band as the ground truth names
    them (None when unknown)."""
    table, spec = rec.table, rec.spec
    bands = (None, "low", "mid", "high")
    return {
        "category": [spec.categories.values[c] if c else None for c in table.category],
        "brand": [spec.brands.values[b] if b else None for b in table.brand],
        "price_band": [bands[b] for b in table.price_band],
    }


def _randomisation(ranker, samples, rec, reference, steps, detailed: list[list[float]]
                   ) -> dict:
    """Randomise the ranker's weights and check the attributions no longer look the same.

    Adebayo et al. (2018): an explanation that survives randomising the model explains the
    input, not the model. "Changed" means the per-explanation rank correlation of feature
    attributions between the trained and the randomised ranker is below 0.5 on median.
    """
    from models.explain import IntegratedGradients, average_baseline

    weights = [*ranker.trainable_weights, *ranker.fitted_constants]
    saved = [w.numpy() for w in weights]
    try:
        # Shuffle each weight tensor: the learnt structure goes, the scale stays (a fixed small
        # init leaves a near-flat model whose attributions just mirror input magnitudes).
        shuffle = np.random.default_rng(1)
        for weight, value in zip(weights, saved, strict=True):
            weight.assign(shuffle.permutation(value.reshape(-1)).reshape(value.shape))
        # The same method on the randomised model: its baseline is re-derived too.
        ig = IntegratedGradients(ranker, average_baseline(ranker, reference), steps=steps)
        randomised = [_detailed(e) for user, items in samples
                      for e in ig.explain(rec.pair_features([user], [items]))]
    finally:
        for weight, value in zip(weights, saved, strict=True):
            weight.assign(value)
    # Shoppers' records differ in length: pad each explanation's purchases with zeros (which
    # neither ranking below counts) so that rows align.
    width = max(len(r) for r in [*detailed, *randomised])
    trained, random = (np.array([r + [0.0] * (width - len(r)) for r in rows])
                       for rows in (detailed, randomised))
    # Features that never carry attribution (excluded from the ranker, or equal to the baseline,
    # like the hour when every request is explained at the same time) would tie at the bottom of
    # both rankings and fake agreement: compare only the features that can move.
    live = (np.abs(trained) > 0).any(axis=0)
    trained, random = trained[:, live], random[:, live]

    def agreement(magnitude: bool) -> float:
        def ranks(row: np.ndarray) -> np.ndarray:
            key = np.abs(row) if magnitude else row
            return np.argsort(np.argsort(-key)).astype(float)

        # Per explanation, only the entries either model gives weight (a short history's empty
        # slots are zero under both and would tie into agreement).
        found = []
        for a, b in zip(trained, random, strict=True):
            moving = (a != 0) | (b != 0)
            if moving.sum() >= 3:
                found.append(np.corrcoef(ranks(a[moving]), ranks(b[moving]))[0, 1])
        return float(np.median(found)) if found else 1.0

    # Decided on signed attributions, as in Adebayo et al.'s "without absolute value" variant.
    # The rank of |attribution| stays partly input-bound under any weights (IG multiplies by
    # input - baseline, and affinity shares differ from the baseline far more than embeddings),
    # so it is reported beside it rather than used.
    signed = agreement(magnitude=False)
    return {"randomisation_changed": signed < 0.5, "randomisation_rank_correlation": signed,
            "randomisation_abs_rank_correlation": agreement(magnitude=True)}
