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
from models.baselines import EASE, Popularity, Recommender, choose_ease_lambda
from pipelines import tracking
from pipelines.features import lineage, load_features
from pipelines.validation import K_VALUES, Split, evaluate_on_split, validation_split

INNER_SHARE = 0.1  # the training window's latest share, held out to choose λ


def train_baselines(settings: Settings, features_uri: str) -> dict[str, dict[str, float]]:
    """Fit popularity and EASE on the feature set's split; each is logged as its own run with its
    params (EASE: the chosen λ, the grid and each λ's inner NDCG@10), lineage and metrics.
    Returns metrics per family."""
    registry.configure(settings)
    features = load_features(features_uri)
    split = validation_split(features)
    batches, data_hash = lineage(features_uri)
    ease_params = ease_lambda_params(settings, split.train, features.train.timestamp,
                                     features.train.user, features.train.item)
    models: dict[str, tuple[Recommender, dict[str, object]]] = {
        "popularity": (Popularity(), {}),
        "ease": (EASE(float(ease_params["lambda"]), max_items=settings.ease_max_items),
                 ease_params),
    }
    baselines: dict[str, dict[str, float]] = {}
    for family, (model, params) in models.items():
        with tracking.start_run(settings.dataset, family, {"model_family": family,
                                                           "data_hash": data_hash}):
            started = time.perf_counter()
            topk = _baseline_topk(model, split, max(K_VALUES))
            seconds = time.perf_counter() - started
            baselines[family] = evaluate_on_split(topk, split, features) | {
                "train_seconds": seconds}
            if isinstance(model, EASE) and model.restricted:
                params = params | {"restricted_to_top_items": settings.ease_max_items}
            tracking.log_params_flat({"model_family": family} | params)
            tracking.log_lineage(batches, f"{settings.dataset}-curated", data_hash)
            tracking.log_metrics(baselines[family])
    return baselines


def ease_lambda_params(settings: Settings, train: sp.csr_matrix, timestamps: np.ndarray,
                       users: np.ndarray, items: np.ndarray) -> dict[str, object]:
    """EASE's λ and how it was chosen: on the training events' latest ``INNER_SHARE`` of time
    (items new to a shopper there are the held-out answers), or ``settings.ease_lambda`` when
    the grid is empty (an explicit override)."""
    grid = [float(v) for v in settings.ease_lambda_grid]
    if not grid:
        return {"lambda": settings.ease_lambda, "lambda_source": "settings"}
    ns = timestamps.astype("datetime64[ns]").astype(np.int64)
    early = ns < np.quantile(ns, 1 - INNER_SHARE)
    fit = sp.csr_matrix((np.ones(int(early.sum()), np.float32), (users[early], items[early])),
                        shape=train.shape)
    fit.data[:] = 1.0
    holdout = _holdout_sets(fit, users[~early], items[~early])
    if not any(len(h) for h in holdout):
        return {"lambda": settings.ease_lambda, "lambda_source": "settings (no inner holdout)"}
    best, scores = choose_ease_lambda(fit, holdout, grid, max_items=settings.ease_max_items)
    return {"lambda": best, "lambda_source": "inner time split",
            "lambda_grid": ",".join(f"{v:g}" for v in grid),
            **{f"inner_ndcg_at_10.lambda_{v:g}": round(s, 5) for v, s in scores.items()}}


def _holdout_sets(fit: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> list[np.ndarray]:
    """Per row of ``fit``: the held-out items it does not already hold."""
    later = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=fit.shape)
    later = later - later.multiply(fit > 0)
    later.eliminate_zeros()
    later.sort_indices()
    return [later.indices[later.indptr[r] : later.indptr[r + 1]] for r in range(fit.shape[0])]


def _baseline_topk(model: Recommender, split: Split, k: int) -> np.ndarray:
    """Fit on the split's train matrix; the k best unseen, known items per judged row."""
    model.fit(split.train)
    scores = model.score(split.rows)
    scores[:, 0] = -np.inf
    seen = split.train[split.rows]
    scores[seen.nonzero()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]
