"""The two fixed offline benchmark protocols, and the baselines measured on them.

Every model, baseline or neural, is judged on exactly these splits through ``evaluate_model``,
so figures are comparable across runs and commits:

* **ML-100K**: a seeded random 80/20 split of the 100,000 ratings (every rating counts as an
  interaction); candidates are all items the user did not rate in train.
* **Online Retail**: a temporal split at 2011-11-01; the test set is what known customers bought
  afterwards of known items they had not bought before, i.e. the "what next" question a shop asks.

The data sets and their splits: ``benchmark_data``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from contracts.progress import Progress, report
from contracts.settings import Settings, get_settings
from models.baselines import (
    EASE,
    LAMBDA_GRID,
    Popularity,
    Recommender,
    choose_ease_lambda,
    restricted_size,
    top_k,
)
from pipelines.evaluation.benchmark_data import (
    ML100K_SEED,
    PROTOCOLS,
    BenchmarkData,
    Protocol,
    held_out_sets,
    holdout_mask,
    load_data_dir,
    load_ml100k,
    load_online_retail,
    matrix,
)
from pipelines.evaluation.metrics import evaluate_topk

# Tuned once per data set; fixed so the anchors stay comparable. The floor a model is judged
# against is the strongest of these and EASE with λ chosen on an inner validation split.
EASE_LAMBDA: dict[str, float] = {"ml-100k": 500.0, "online-retail": 100.0}
FIXED_LAMBDAS = (100.0, 500.0)
INNER_SHARE = 0.1  # of the train interactions, held out to choose EASE's λ
SCORE_CHUNK = 1024  # users scored at once: bounds memory at chunk x n_items floats


def item_popularity(train: sp.csr_matrix) -> np.ndarray:
    """Share of train users who interacted with each item (the novelty metric's p)."""
    counts = np.diff(sp.csc_matrix(train > 0).indptr)
    return counts / max(train.shape[0], 1)


def evaluate_model(
    model: Recommender,
    data: BenchmarkData,
    k_values: Sequence[int] = (5, 10, 20),
    item_features: np.ndarray | sp.spmatrix | None = None,
) -> dict[str, float]:
    """Evaluate a fitted model on the protocol: users with test items, train items excluded.

    Users are scored in chunks so a 4,000-user x 4,000-item dense score matrix never exists.
    """
    rows = np.flatnonzero([len(t) > 0 for t in data.test_sets])
    k_max = max(k_values)
    lists = [
        top_k(model.score(chunk), k_max, exclude=data.train[chunk])
        for chunk in np.array_split(rows, max(1, -(-len(rows) // SCORE_CHUNK)))
    ]
    topk = np.vstack(lists) if lists else np.empty((0, k_max), dtype=np.int64)
    return evaluate_topk(
        topk,
        [data.test_sets[r] for r in rows],
        k_values,
        n_items=data.n_items,
        item_popularity=item_popularity(data.train),
        item_features=item_features,
    )


def inner_split(
    data: BenchmarkData, protocol: Protocol, share: float = INNER_SHARE, seed: int = ML100K_SEED
) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """The train interactions split as the protocol splits the data: a seeded random ``share``
    (random) or the latest ``share`` of time (temporal) held out, as items new to each user."""
    rows = data.interactions
    held = holdout_mask(rows["timestamp"], share, protocol, seed)
    users, items = rows["user_idx"].to_numpy(), rows["item_idx"].to_numpy()
    fit = matrix(users[~held], items[~held], data.train.shape)
    return fit, held_out_sets(fit, users[held], items[held], data.n_users)


def run_baselines(
    data: BenchmarkData, dataset: str, k: int = 10, protocol: Protocol | None = None,
    max_items: int | None = None,
) -> dict[str, dict[str, float]]:
    """Fit and evaluate popularity and EASE; reports metrics at 5, 10, 20 and k, plus timings.

    ``ease`` has λ chosen on ``inner_split`` over ``LAMBDA_GRID`` (its ``lambda`` and each
    λ's inner NDCG@10 reported); ``ease_lambda_100`` / ``_500`` are the fixed anchors. Above
    ``max_items`` items (None: never) every EASE variant, its λ choice included, is restricted
    to the most popular ones (see ``ease_restriction``).
    """
    protocol = protocol or PROTOCOLS.get(dataset)
    if protocol is None:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(PROTOCOLS)}")
    k_values = tuple(sorted({5, 10, 20, k}))
    start = time.perf_counter()
    fit, holdout = inner_split(data, protocol)
    chosen, grid = choose_ease_lambda(fit, holdout, LAMBDA_GRID, max_items=max_items)
    choose_seconds = time.perf_counter() - start
    models: dict[str, Recommender] = {
        "popularity": Popularity(),
        "ease": EASE(lambda_=chosen, max_items=max_items),
        **{f"ease_lambda_{lam:g}": EASE(lambda_=lam, max_items=max_items)
           for lam in FIXED_LAMBDAS},
    }
    results: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(data.train)
        fitted = time.perf_counter()
        metrics = evaluate_model(model, data, k_values)
        metrics["train_seconds"] = fitted - start
        metrics["eval_seconds"] = time.perf_counter() - fitted
        if isinstance(model, EASE):
            metrics["lambda"] = model.lambda_
        results[name] = metrics
    results["ease"]["train_seconds"] += choose_seconds
    results["ease"] |= {f"inner_ndcg@10_lambda_{lam:g}": v for lam, v in grid.items()}
    return results


def ease_restriction(n_items: int, max_items: int) -> dict[str, Any]:
    """What the output says about EASE's O(items^3) cost: the items it covered and why."""
    kept = restricted_size(n_items, max_items)
    return {"catalogue_items": n_items, "ease_max_items": max_items,
            "restricted_to_top_items": kept,
            "note": "EASE fitted on every item" if kept is None else
            f"EASE restricted to the {kept} most popular of {n_items} items (ease_max_items); "
            "the others are never recommended by it"}


def strongest_ease(baselines: dict[str, dict[str, float]], metric: str = "ndcg@10") -> str:
    """The EASE variant with the best ``metric``: the floor a model is judged against."""
    return max((n for n in baselines if n.startswith("ease")), key=lambda n: baselines[n][metric])


def train_on_protocol(data: BenchmarkData, protocol: Protocol, settings: Settings
                      ) -> tuple[ProtocolScores, list[dict[str, Any]]]:
    """The product's training steps on a protocol's train interactions: features
    (``build_features``), one candidate per ``settings.train_grid`` entry fitted and judged on
    the validation window (``fit_and_judge``, as ``shoprec train`` does), the best by the gate
    metric kept. What a protocol changes is named in ``PROTOCOL_TRAINING``.

    The protocol's test interactions lie beyond every train one, so the chosen model's
    collaborative constants (B at its λ, the trend) are then refitted on all of them and it
    answers from every train event, as the baselines are fitted on all of them. Returns the
    scorer and each grid entry's validation figures, the chosen one first.
    """
    from models.collaborative import fit_collaborative
    from models.fit import FittedRetrieval, retrieval_key, wide_key
    from models.inputs import first_purchases, latest_histories
    from models.two_stage import TwoStageRecommender
    from pipelines.data.features import build_features
    from pipelines.evaluation.splits import validation_split
    from pipelines.steps.candidate import candidate_config, fit_and_judge
    from pipelines.tracking.register import metric_value

    random_split = protocol == "random"
    rows = data.interactions
    events = pd.DataFrame({
        "event_id": np.arange(len(rows)).astype(str),
        "user_id": rows["user_id"].astype(str).to_numpy(),
        "item_id": rows["item_id"].astype(str).to_numpy(),
        "timestamp": pd.to_datetime(rows["timestamp"], utc=True).to_numpy(),
        "rating": rows["rating"].to_numpy() if "rating" in rows else np.nan,
    })
    item_keys = [str(i) for i in data.item_ids]
    # No content is known: empty titles, not ids posing as titles (their tokens would be a
    # second id embedding the ranker memorises).
    items = pd.DataFrame({"item_id": item_keys, "title": "", "category": "other",
                          "brand": None, "price": np.nan})
    if data.catalogue is not None:
        items = data.catalogue.assign(item_id=lambda d: d["item_id"].astype(str))
    users = (data.users.assign(user_id=lambda d: d["user_id"].astype(str))
             if data.users is not None else pd.DataFrame({"user_id": events["user_id"].unique()}))
    configs = [candidate_config(settings, {**PROTOCOL_TRAINING[protocol], **entry})
               for entry in settings.train_grid]
    features = build_features(events, items, users, validation_share=VALIDATION_SHARE,
                              history_length=configs[0].history_length,
                              leave_one_out=random_split,
                              min_users=0 if random_split else settings.gate.min_users)
    split = validation_split(features)
    # Retrieval and the wide part's constants fitted once per config, as in the product.
    judged, stage_one, constants = [], {}, {}
    for entry, config in zip(settings.train_grid, configs, strict=True):
        key = tuple(sorted(retrieval_key(config).items()))
        wide = tuple(sorted(wide_key(config).items()))
        fitted, _, metrics = fit_and_judge(features, config, split, retrieval=stage_one.get(key),
                                           wide=constants.get(wide))
        stage_one.setdefault(key, FittedRetrieval(fitted.retrieval, fitted.history["retrieval"]))
        if fitted.wide is not None:
            constants.setdefault(wide, fitted.wide)
        judged.append(({"overrides": dict(entry), "validation": metrics,
                        "deep_choice": fitted.deep_choice}, fitted, config))
    judged.sort(key=lambda j: -(metric_value(j[0]["validation"], settings.gate.metric) or 0.0))
    _, fitted, config = judged[0]
    spec = features.spec
    if fitted.collaborative is not None:
        whole = [np.concatenate([getattr(features.train, f), getattr(features.valid, f)])
                 for f in ("user", "item", "timestamp")]
        fitted.ranker.assign_collaborative(fit_collaborative(
            *whole, spec.items.size, fitted.collaborative.lambda_, config.trend_days))
    recommender = TwoStageRecommender(
        spec, features.table, fitted.retrieval, fitted.ranker, items,
        latest_histories(spec, events), first_purchases(spec, events),
        retrieve_n=config.retrieve_n, item_item_n=config.item_item_n)
    return ProtocolScores(recommender, data), [j[0] for j in judged]


class ProtocolScores:
    """A trained recommender behind the baselines' ``score`` interface, on the protocol's
    columns: its top ``TOP`` first in ranker order, every other item after them in retrieval
    order (the protocol's metrics read the top 20)."""

    TOP = 50

    def __init__(self, recommender, data: BenchmarkData) -> None:
        self.recommender, self.data = recommender, data
        self.columns = recommender.spec.items.lookup([str(i) for i in data.item_ids])
        self.protocol_column = np.full(recommender.spec.items.size, -1, np.int64)
        self.protocol_column[self.columns] = np.arange(len(self.columns))
        self.user_keys = [str(u) for u in data.user_ids]

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        rec = self.recommender
        features = rec.features_for_many([self.user_keys[r] for r in user_rows])
        retrieval = rec.retrieval_scores(features)
        exclude = self.data.train[user_rows]
        by_column = retrieval[:, self.columns]
        by_column[exclude.nonzero()] = -np.inf
        seen = [self.columns[exclude.indices[exclude.indptr[i]:exclude.indptr[i + 1]]]
                for i in range(len(user_rows))]
        items, ranked = rec.top_k(features, seen, self.TOP)
        finite = by_column[np.isfinite(by_column)]
        scores = by_column - ((np.nanmax(np.abs(finite)) if finite.size else 0.0) + 1e3)
        rows, slots = np.nonzero(np.isfinite(ranked))
        columns = self.protocol_column[items[rows, slots]]
        known = columns >= 0
        # Ranker order, whatever the scores' scale: the best gets the highest value.
        scores[rows[known], columns[known]] = 1e6 - slots[known]
        return scores


# What a protocol changes in the product's candidate config (``candidate_config``: the
# settings' train_config, then these, then each grid entry), by protocol, not by data set. A
# random split has no time order for the context features or the ranker's inner split to follow;
# a temporal one keeps the product's. (The wide part reads whole records either way.)
PROTOCOL_TRAINING: dict[str, dict[str, Any]] = {
    "random": {"use_context": False, "inner_split": "random"},
    "temporal": {},
}
# The protocol's test split is held apart already: the validation window, which only chooses
# (early stopping, the deep part, the grid entry), takes a tenth of the train side rather than
# the product's fifth.
VALIDATION_SHARE = 0.1


def benchmark(dataset: str | None, path: Path | None = None, protocol: Protocol | None = None,
              seed: int = ML100K_SEED, ease_max_items: int | None = None,
              progress: Progress | None = None) -> dict:
    """The fixed protocol for ``dataset`` (ml-100k, online-retail), or ``protocol`` on the
    ingested data directory ``path`` when ``dataset`` is None: baselines and the TFRS model,
    with timings, in one JSON-able object. EASE is restricted above ``ease_max_items`` items
    (default: the settings'), and the output's ``ease_restriction`` says whether it was.
    ``progress`` counts the four stages: load, baselines, the TFRS grid, its evaluation."""
    if ease_max_items is None:
        ease_max_items = get_settings().ease.max_items
    start = time.perf_counter()
    if dataset is None:
        if path is None or protocol is None:
            raise ValueError("a data directory needs both a path and a protocol")
        data = load_data_dir(path, protocol, seed)
    else:
        loader = {"ml-100k": load_ml100k, "online-retail": load_online_retail}[dataset]
        data = loader(path) if path else loader()
        protocol = PROTOCOLS[dataset]
    load_seconds = time.perf_counter() - start
    report(progress, "benchmark: stages", 1, 4)
    baselines = run_baselines(data, data.name, protocol=protocol, max_items=ease_max_items)
    report(progress, "benchmark: stages", 2, 4)
    floor = strongest_ease(baselines)
    start = time.perf_counter()
    model, grid = train_on_protocol(data, protocol, get_settings())
    fitted = time.perf_counter()
    report(progress, "benchmark: stages", 3, 4)
    metrics = evaluate_model(model, data, (5, 10, 20))
    report(progress, "benchmark: stages", 4, 4)
    metrics["train_seconds"] = fitted - start
    metrics["eval_seconds"] = time.perf_counter() - fitted
    return {
        "dataset": data.name,
        "protocol": protocol,
        "users": data.n_users,
        "users_evaluated": int(sum(len(t) > 0 for t in data.test_sets)),
        "items": data.n_items,
        "train_interactions": int(data.train.nnz),
        "test_interactions": data.n_test_interactions,
        "load_seconds": round(load_seconds, 2),
        "model": metrics,
        "grid": grid,
        "baselines": baselines,
        "ease_restriction": ease_restriction(data.n_items, ease_max_items),
        "strongest_ease": floor,
        "ratio_to_strongest_ease_ndcg@10": metrics["ndcg@10"] / baselines[floor]["ndcg@10"],
        "beats_ease_ndcg@10": metrics["ndcg@10"] >= baselines[floor]["ndcg@10"],
    }
