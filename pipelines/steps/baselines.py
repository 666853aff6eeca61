"""The baselines step: popularity and EASE on the run's validation split, each its own MLflow run.

They are the floor every candidate must clear (the gate compares against popularity) and the
yardstick a reader of the compare view needs: a neural model that does not beat EASE on the same
split is not worth serving. Both are fitted on the feature set's split, so their figures sit next
to the candidates' like for like. EASE's λ is chosen on an inner time split of the training
window (never on the validation window it is judged on): a floor tuned by hand once, for another
data set, would flatter the candidates.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from contracts import registry
from contracts.settings import Settings
from models.baselines import (
    EASE,
    Popularity,
    Recommender,
    choose_ease_lambda,
    restricted_size,
)
from models.collaborative import holdout_sets, inner_split
from pipelines.data.features import FeatureSet, lineage, load_features
from pipelines.evaluation.splits import K_VALUES, Split, evaluate_on_split, validation_split
from pipelines.tracking import runs as tracking

INNER_SHARE = 0.1  # the training window's latest share, held out to choose λ
FAMILIES = ("popularity", "ease")
# EASE's scope params, and their names in the step's result (beside the metrics, not logged)
SCOPE_MARKERS = (("catalogue_items", "catalogue_items"),
                 ("restricted_to_top_items", "restricted_items"))


def train_baselines(settings: Settings, features_uri: str) -> dict[str, dict[str, float]]:
    """Fit popularity and EASE on the feature set's split; each is logged as its own run with its
    params (EASE: the chosen λ, the grid and each λ's inner NDCG@10), lineage and metrics.

    Returns metrics per family. EASE's also carry its scope, for the gate to quote:
    ``catalogue_items`` and, when the catalogue is over ``settings.ease.max_items`` (EASE costs
    O(items^3)), ``restricted_items``, the number of most popular items it was fitted on; its run
    then has the param ``restricted_to_top_items`` and the tag ``ease_restricted_to_top_items``.
    """
    registry.configure(settings)
    features = load_features(features_uri)
    split = validation_split(features)
    batches, data_hash = lineage(features_uri)
    baselines: dict[str, dict[str, float]] = {}
    for family in FAMILIES:
        model, params = baseline(family, settings, features, split)
        tags = {"model_family": family, "data_hash": data_hash}
        if "restricted_to_top_items" in params:
            tags["ease_restricted_to_top_items"] = str(params["restricted_to_top_items"])
        with tracking.start_run(settings.dataset, family, tags):
            started = time.perf_counter()
            topk = baseline_topk(model, split, max(K_VALUES))
            seconds = time.perf_counter() - started
            baselines[family] = evaluate_on_split(topk, split, features) | {
                "train_seconds": seconds}
            tracking.log_params_flat({"model_family": family} | params)
            tracking.log_lineage(batches, f"{settings.dataset}-curated", data_hash)
            tracking.log_metrics(baselines[family])
        baselines[family] |= {marker: float(params[param]) for param, marker in SCOPE_MARKERS
                              if param in params}
    return baselines


def baseline(family: str, settings: Settings, features: FeatureSet,
             split: Split) -> tuple[Recommender, dict[str, object]]:
    """The unfitted baseline of ``family`` and its params; EASE's λ is chosen here (see
    ``ease_lambda_params``), on the items ``ease_scope`` says it covers."""
    if family == "popularity":
        return Popularity(), {}
    if family != "ease":
        raise ValueError(f"unknown baseline {family!r}; expected one of {FAMILIES}")
    params = ease_lambda_params(settings, split.train, features.train.timestamp,
                                features.train.user, features.train.item)
    params |= ease_scope(split.train.shape[1], settings.ease.max_items)
    return EASE(float(params["lambda"]), max_items=settings.ease.max_items), params


def ease_scope(n_items: int, max_items: int) -> dict[str, int]:
    """The items EASE sees (``catalogue_items``, the split's item columns) and, when there are
    more than ``max_items``, the top ones it is restricted to (``restricted_to_top_items``)."""
    kept = restricted_size(n_items, max_items)
    return {"catalogue_items": n_items} | (
        {} if kept is None else {"restricted_to_top_items": kept})


def ease_lambda_params(settings: Settings, train: sp.csr_matrix, timestamps: np.ndarray,
                       users: np.ndarray, items: np.ndarray) -> dict[str, object]:
    """EASE's λ and how it was chosen: on the training events' latest ``INNER_SHARE`` of time
    (items new to a shopper there are the held-out answers), or ``settings.ease.lambda_`` when
    the grid is empty (an explicit override)."""
    grid = [float(v) for v in settings.ease.lambda_grid]
    if not grid:
        return {"lambda": settings.ease.lambda_, "lambda_source": "settings"}
    early = ~inner_split(timestamps, INNER_SHARE, "time", seed=0)
    fit = sp.csr_matrix((np.ones(int(early.sum()), np.float32), (users[early], items[early])),
                        shape=train.shape)
    fit.data[:] = 1.0
    holdout = holdout_sets(fit, users[~early], items[~early])
    if not any(len(h) for h in holdout):
        return {"lambda": settings.ease.lambda_, "lambda_source": "settings (no inner holdout)"}
    best, scores = choose_ease_lambda(fit, holdout, grid, max_items=settings.ease.max_items)
    return {"lambda": best, "lambda_source": "inner time split",
            "lambda_grid": ",".join(f"{v:g}" for v in grid),
            **{f"inner_ndcg_at_10.lambda_{v:g}": round(s, 5) for v, s in scores.items()}}



def baseline_topk(model: Recommender, split: Split, k: int) -> np.ndarray:
    """Fit on the split's train matrix; the k best unseen, known items per judged row."""
    model.fit(split.train)
    scores = model.score(split.rows)
    scores[:, 0] = -np.inf
    seen = split.train[split.rows]
    scores[seen.nonzero()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]
