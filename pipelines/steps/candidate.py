"""One candidate of the grid: fit the two-stage model, evaluate it, log it as its own MLflow run.

A candidate is ``settings.train_config`` (over ``TrainConfig``'s defaults) with one entry of
``settings.train_grid`` on top, trained on the run's shared feature set and judged on its
validation split, so candidates differ only in what the grid changes and the pipeline can train
them in parallel and choose once (``pipelines.steps.gate``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import mlflow
import numpy as np

from contracts import registry
from contracts.model_info import PROBE_USER_TAG
from contracts.progress import Progress, report
from contracts.settings import Settings
from models import distribute
from models.fit import (
    EpochCallback,
    Fitted,
    FittedRetrieval,
    WideConstants,
    choose_deep_weight,
    fit_two_stage,
)
from models.inputs import first_purchases, latest_histories
from models.train_config import TrainConfig
from models.two_stage import TwoStageRecommender
from pipelines.data.features import FeatureSet, lineage, load_features
from pipelines.data.shared_retrieval import shared_retrieval, shared_wide
from pipelines.evaluation.splits import K_VALUES, Split, evaluate_on_split, validation_split
from pipelines.steps.gate import CandidateResult
from pipelines.tracking import model_logging
from pipelines.tracking import runs as tracking


def candidate_config(settings: Settings, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """``settings.train_config`` over the defaults, with one grid entry on top."""
    return replace(TrainConfig(**settings.train_config), **(overrides or {}))


def train_candidate(
    settings: Settings,
    features_uri: str,
    overrides: Mapping[str, Any] | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    progress: Progress | None = None,
    label: str = "candidate",
) -> CandidateResult:
    """Fit, evaluate and log one two-stage candidate as its own MLflow run.

    ``overrides`` is one entry of ``settings.train_grid``; the history length is the feature
    set's, since the features were built for it. ``baselines`` (from ``train_baselines``) go into
    the run's evaluation report and plots. The run is tagged with a shopper the model knows
    (``PROBE_USER_TAG``), whom the endpoint's smoke test asks for. ``progress`` counts its
    epochs as "<label>: <stage> epochs".

    Under multi-worker training (``settings.distribute``, ``TF_CONFIG``) every worker calls this;
    only the chief logs, evaluates and saves, the others train in step and return no run.
    """
    overrides = dict(overrides or {})
    config = candidate_config(settings, overrides)
    strategy = distribute.strategy(settings.distribute)
    features = load_features(features_uri)
    if config.history_length != features.spec.history_length:
        raise ValueError(
            f"history_length {config.history_length} differs from the feature set's "
            f"{features.spec.history_length}: set it in train_config, not per candidate"
        )
    if not distribute.is_chief(strategy):  # trains in step with the chief; logs nothing
        started = time.perf_counter()
        _fit(features, config, strategy, retrieval=shared_retrieval(features_uri, features,
                                                                    config, strategy))
        return CandidateResult("", "", {"train_seconds": time.perf_counter() - started},
                               overrides)
    registry.configure(settings)
    split = validation_split(features)
    batches, data_hash = lineage(features_uri)
    tags = {"model_family": "tfrs", "data_hash": data_hash,
            "candidate": json.dumps(overrides, sort_keys=True)}
    with tracking.start_run(settings.dataset, "tfrs-two-stage", tags) as run:
        tracking.log_params_flat({"model": config.to_dict(), "data": {
            "train_interactions": len(features.train), "valid_interactions": len(features.valid),
            "users": features.spec.users.size, "items": features.spec.items.size,
            "split_time": str(features.split_time), "window_start": str(features.window[0]),
            "window_end": str(features.window[1]), "batches": len(batches)}})
        tracking.log_lineage(batches, f"{settings.dataset}-curated", data_hash)
        started = time.perf_counter()
        on_epoch = _epoch_logger(config, progress, label)
        stage_one = shared_retrieval(features_uri, features, config, strategy, on_epoch)
        retrieval_seconds = time.perf_counter() - started  # ~0 when another candidate's
        wide = shared_wide(features_uri, features, config)
        shared_seconds = time.perf_counter() - started  # stage one and the wide constants
        fitted, recommender, metrics = fit_and_judge(
            features, config, split, strategy, on_epoch=on_epoch, retrieval=stage_one,
            wide=wide)
        metrics["retrieval_seconds"] = retrieval_seconds
        metrics["wide_constants_seconds"] = shared_seconds - retrieval_seconds
        metrics["train_seconds"] += shared_seconds
        if recommender.known_users:
            mlflow.set_tag(PROBE_USER_TAG, recommender.known_users[0])
        tracking.log_metrics(metrics)
        model_logging.log_explanations(recommender, settings.data_dir)
        model_uri = model_logging.log_model(run.info.run_id, recommender, features, fitted,
                                            config, metrics, dict(baselines or {}))
    return CandidateResult(run.info.run_id, model_uri, metrics, overrides)


def fit_and_judge(features: FeatureSet, config: TrainConfig, split: Split, strategy=None,
                  on_epoch=None, retrieval: FittedRetrieval | None = None,
                  wide: WideConstants | None = None
                  ) -> tuple[Fitted, TwoStageRecommender, dict[str, float]]:
    """Fit one candidate and judge it on the validation ``split``: the fitted models, the
    recommender serving would build, and its figures (what ``rank_candidates`` orders by).
    ``retrieval``: stage one already trained for this config (``shared_retrieval``); then
    ``train_seconds`` counts the ranker alone. The benchmark chooses among the grid with this
    same step. ``wide``: the wide part's constants already fitted (``shared_wide``)."""
    started = time.perf_counter()
    fitted = _fit(features, config, strategy, on_epoch=on_epoch, retrieval=retrieval, wide=wide)
    seconds = time.perf_counter() - started
    recommender = recommender_for(features, fitted, config)
    metrics = _with_deep_weight(recommender, fitted, config, split, features)
    metrics["train_seconds"] = seconds
    ranking = [e["val_auc"] for e in fitted.history["ranking"] if "val_auc" in e]
    if ranking:  # the best epoch's validation AUC (pairs of positives and sampled negatives)
        metrics["ranker_auc"] = max(ranking)
    return fitted, recommender, metrics


def _with_deep_weight(recommender: TwoStageRecommender, fitted: Fitted, config: TrainConfig,
                      split: Split, features: FeatureSet, metric: str = "ndcg@10"
                      ) -> dict[str, float]:
    """The validation figures at the deep part's chosen weight: each of ``deep_weights`` is
    scored as served (retrieval's and EASE's candidates, ranked; one ranker pass for all),
    and ``choose_deep_weight`` keeps the one best at ``metric``. Without a wide part there is
    nothing to weigh: the deep part is the model."""
    ranker = fitted.ranker
    if not ranker.item_item.enabled:
        return evaluate_on_split(model_topk(recommender, split, max(K_VALUES)), split, features)
    query = recommender.features_for_many([split.users[r] for r in split.rows])
    answers = recommender.top_k_by_weight(query, split.seen(), max(K_VALUES),
                                          config.deep_weights)
    by_weight = {w: evaluate_on_split(_filled(items, scores, len(split.rows), max(K_VALUES)),
                                      split, features)
                 for w, (items, scores) in answers.items()}
    fitted.deep_choice = choose_deep_weight({w: m.get(metric, 0.0) for w, m in by_weight.items()})
    ranker.deep_weight.assign(fitted.deep_choice["chosen"])
    return by_weight[fitted.deep_choice["chosen"]]


def _fit(features: FeatureSet, config: TrainConfig, strategy, on_epoch=None,
         retrieval: FittedRetrieval | None = None, wide: WideConstants | None = None) -> Fitted:
    return fit_two_stage(features.spec, features.table, features.train, features.valid, config,
                         on_epoch=on_epoch, strategy=strategy, shoppers=features.shoppers,
                         retrieval=retrieval, wide=wide)


def _epoch_logger(config: TrainConfig, progress: Progress | None, label: str) -> EpochCallback:
    """Per-epoch figures as ``retrieval.loss`` etc., stepped by epoch (the run's curves), and
    the epoch counted on ``progress`` (early stopping may end a stage before its total)."""
    totals = {"retrieval": config.retrieval_epochs, "ranking": config.ranking_epochs}

    def on_epoch(stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
        tracking.log_metrics({f"{stage}.{name}": value for name, value in metrics.items()},
                             step=epoch)
        report(progress, f"{label}: {stage} epochs", epoch + 1, totals[stage])

    return on_epoch


def recommender_for(features: FeatureSet, fitted: Fitted, config: TrainConfig
                    ) -> TwoStageRecommender:
    """The recommender serving would build: histories and purchases from before the split."""
    spec, events = features.spec, features.train_events
    return TwoStageRecommender(spec, features.table, fitted.retrieval, fitted.ranker,
                               features.catalogue, latest_histories(spec, events),
                               first_purchases(spec, events), retrieve_n=config.retrieve_n,
                               item_item_n=config.item_item_n)


def model_topk(recommender, split: Split, k: int) -> np.ndarray:
    """The model's top k for every judged row, items bought before the window left out. Slots
    the model cannot fill (a small catalogue, a short retrieval list) hold the unknown item 0,
    which is never a hit."""
    query = recommender.features_for_many([split.users[r] for r in split.rows])
    items, scores = recommender.top_k(query, split.seen(), k)
    return _filled(items, scores, len(split.rows), k)


def _filled(items: np.ndarray, scores: np.ndarray, rows: int, k: int) -> np.ndarray:
    topk = np.zeros((rows, k), np.int64)
    filled = np.where(np.isfinite(scores), items, 0)
    topk[:, : filled.shape[1]] = filled
    return topk
