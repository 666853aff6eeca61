"""The baselines step: popularity and EASE on the run's validation split, each its own MLflow run.

They are the floor every candidate must clear (the gate compares against popularity) and the
yardstick a reader of the compare view needs: a neural model that does not beat EASE on the same
split is not worth serving. Both are fitted on the feature set's split, so their figures sit next
to the candidates' like for like.
"""

from __future__ import annotations

import time

import numpy as np

from contracts import registry
from contracts.settings import Settings
from models.baselines import EASE, Popularity, Recommender
from pipelines import tracking
from pipelines.features import lineage, load_features
from pipelines.validation import K_VALUES, Split, evaluate_on_split, validation_split


def train_baselines(settings: Settings, features_uri: str) -> dict[str, dict[str, float]]:
    """Fit popularity and EASE (λ = ``settings.ease_lambda``) on the feature set's split; each
    is logged as its own run with its params, lineage and metrics. Returns metrics per family."""
    registry.configure(settings)
    features = load_features(features_uri)
    split = validation_split(features)
    batches, data_hash = lineage(features_uri)
    models: dict[str, tuple[Recommender, dict[str, float]]] = {
        "popularity": (Popularity(), {}),
        "ease": (EASE(settings.ease_lambda), {"lambda": settings.ease_lambda}),
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
            tracking.log_params_flat({"model_family": family} | params)
            tracking.log_lineage(batches, f"{settings.dataset}-curated", data_hash)
            tracking.log_metrics(baselines[family])
    return baselines


def _baseline_topk(model: Recommender, split: Split, k: int) -> np.ndarray:
    """Fit on the split's train matrix; the k best unseen, known items per judged row."""
    model.fit(split.train)
    scores = model.score(split.rows)
    scores[:, 0] = -np.inf
    seen = split.train[split.rows]
    scores[seen.nonzero()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]
