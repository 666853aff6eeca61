"""Training both stages on interaction arrays: pure computation, no file or network I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from models import distribute
from models.collaborative import (
    Collaborative,
    choose_lambda,
    fit_collaborative,
    inner_split,
)
from models.feature_spec import FeatureSpec
from models.inputs import Interactions, ItemTable, ShopperTable, pad_left
from models.ranking import PURCHASES, RankingModel
from models.retrieval import RetrievalModel
from models.train_config import TrainConfig
from models.training_data import query_features, ranking_set, retrieval_set

EpochCallback = Callable[[str, int, dict[str, float]], None]


@dataclass
class Fitted:
    retrieval: RetrievalModel
    ranker: RankingModel
    history: dict[str, list[dict[str, float]]]  # stage -> per-epoch metrics
    collaborative: Collaborative | None = None  # what the ranker's constants were fitted to
    # The deep part's weight chosen on validation (``choose_deep_weight``), when there is a
    # wide part to weigh it against.
    deep_choice: dict[str, float] | None = None
    wide: WideConstants | None = None  # the wide part's constants, for another candidate


def retrieval_model(spec: FeatureSpec, table: ItemTable, config: TrainConfig,
                    shoppers: ShopperTable | None = None) -> RetrievalModel:
    return RetrievalModel(spec, table, config.dim, config.temperature, config.history_dropout,
                          config.dropout, config.use_user_id, config.use_context, shoppers)


def ranking_model(spec: FeatureSpec, table: ItemTable, retrieval: RetrievalModel,
                  config: TrainConfig, shoppers: ShopperTable | None = None) -> RankingModel:
    return RankingModel(spec, table, retrieval, dropout=config.dropout,
                        excluded=tuple(config.ranker_excluded),
                        item_item=uses_item_item(spec, config),
                        item_item_record=config.item_item_record, shoppers=shoppers)


def uses_item_item(spec: FeatureSpec, config: TrainConfig) -> bool:
    return config.item_item and spec.items.size <= config.item_item_max_items


# What retrieval's training reads of the config: candidates that agree on these (the default
# grid's do) can share one trained retrieval model (``FittedRetrieval``).
RETRIEVAL_FIELDS = ("seed", "dim", "temperature", "history_dropout", "dropout", "batch_size",
                    "learning_rate", "retrieval_epochs", "patience", "use_user_id",
                    "use_context", "history_length")


def retrieval_key(config: TrainConfig) -> dict:
    return {name: getattr(config, name) for name in RETRIEVAL_FIELDS}


# What the wide part's constants read of the config: candidates that agree on these (the default
# grid's wide ones do) can share one ``WideConstants``.
WIDE_FIELDS = ("seed", "ranker_share", "inner_split", "ease_lambda", "trend_days")


def wide_key(config: TrainConfig) -> dict:
    return {name: getattr(config, name) for name in WIDE_FIELDS}


@dataclass(frozen=True)
class WideConstants:
    """The wide part's constants for one training set: B and the trend fitted on the earlier
    events (``inner``: the ranker learns on the later ones beside it, as it will serve) and on
    all of them (``served``, what the model keeps)."""

    inner: Collaborative
    served: Collaborative


def fit_wide_constants(spec: FeatureSpec, train: Interactions, config: TrainConfig
                       ) -> WideConstants:
    """EASE's λ chosen on the inner split (or ``config.ease_lambda``), then B and the trend on
    the earlier events and on all: B never saw the pairs the ranker learns from, as it will not
    have seen the ones it serves."""
    later = _later(train, config)
    n = spec.items.size
    lambda_ = config.ease_lambda or choose_lambda(train.user, train.item, later, n)
    early = train.subset(~later)
    return WideConstants(
        fit_collaborative(early.user, early.item, early.timestamp, n, lambda_, config.trend_days),
        fit_collaborative(train.user, train.item, train.timestamp, n, lambda_, config.trend_days))


@dataclass
class FittedRetrieval:
    """Stage one, trained: the model (frozen) and its per-epoch figures."""

    model: RetrievalModel
    history: list[dict[str, float]]


def fit_retrieval(
    spec: FeatureSpec,
    table: ItemTable,
    train: Interactions,
    valid: Interactions,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    strategy: tf.distribute.Strategy | None = None,
    shoppers: ShopperTable | None = None,
) -> FittedRetrieval:
    """Train stage one, early-stopped on ``valid``, and freeze it (the ranker reads it)."""
    strategy = strategy or distribute.strategy()
    tf.keras.utils.set_random_seed(config.seed)
    batch = config.batch_size * strategy.num_replicas_in_sync
    history: dict[str, list[dict[str, float]]] = {"retrieval": []}
    with strategy.scope():
        retrieval = retrieval_model(spec, table, config, shoppers)
        retrieval.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    _fit(retrieval, retrieval_set(train, table, config, batch, shuffle=True),
         retrieval_set(valid, table, config, batch, shuffle=False), config.retrieval_epochs,
         config.patience, "retrieval", history, on_epoch, strategy.num_replicas_in_sync)
    retrieval.trainable = False
    return FittedRetrieval(retrieval, history["retrieval"])


def fit_two_stage(
    spec: FeatureSpec,
    table: ItemTable,
    train: Interactions,
    valid: Interactions,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    strategy: tf.distribute.Strategy | None = None,
    shoppers: ShopperTable | None = None,
    retrieval: FittedRetrieval | None = None,
    wide: WideConstants | None = None,
) -> Fitted:
    """Train retrieval, then the ranker on top of it; early-stop each on ``valid``.

    ``shoppers``: the shoppers' attributes per user id (none when omitted). ``retrieval``: stage
    one already trained with this ``retrieval_key`` (another candidate's); only the ranker is
    trained then. The ranker is seeded on its own, so it starts the same either way. ``wide``:
    the wide part's constants already fitted with this ``wide_key`` (fitted here when omitted).

    ``strategy`` defaults to ``distribute.strategy()``: TF's default (one process) unless
    ``TF_CONFIG`` names several workers. Under a multi-worker strategy every worker calls this
    with the same arguments and trains one model in sync: ``config.batch_size`` is per replica
    (so each replica's in-batch negatives are as many as in one process), every worker reads its
    share of each global batch, and gradients are summed over replicas; with Adam that sum
    updates like the mean (Adam divides by the gradient's running scale). The returned models are
    plain (outside the strategy), so the chief alone can evaluate and save them.
    """
    strategy = strategy or distribute.strategy()  # first: TF wants collectives set up early
    distributed = distribute.is_distributed(strategy)
    if retrieval is None:
        retrieval = fit_retrieval(spec, table, train, valid, config, on_epoch, strategy,
                                  shoppers)
    history = {"retrieval": list(retrieval.history), "ranking": []}
    tf.keras.utils.set_random_seed(config.seed + 1)
    batch = config.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        ranker = ranking_model(spec, table, retrieval.model, config, shoppers)
        if distributed:
            # tfrs' Ranking task calls its (mean-reducing) Keras loss inside train_step, which
            # Keras refuses under a strategy unless told, as Model.compile tells its own losses,
            # that the per-replica mean is intended.
            ranker.task._loss._allow_sum_over_batch_size = True
        ranker.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    rng = np.random.default_rng(config.seed)
    rank_train, earlier, collaborative = train, None, None
    if ranker.item_item.enabled:
        wide = wide or fit_wide_constants(spec, train, config)
        rank_train, earlier = _ranker_rows(train, config)
        collaborative = wide.inner
        ranker.assign_collaborative(collaborative)
        ranker.item_item.set_scale(_wide_scale(collaborative.matrix, rank_train))
    stage_one = retrieval.model
    _fit(ranker, ranking_set(stage_one, rank_train, table, config, rng, batch, shuffle=True,
                              earlier=earlier, collaborative=collaborative),
         ranking_set(stage_one, valid, table, config, rng, batch, shuffle=False, earlier=train,
                      collaborative=collaborative),
         config.ranking_epochs, config.patience, "ranking", history, on_epoch,
         strategy.num_replicas_in_sync)
    if wide is not None:  # as served: B and the trend as of the end of the training events
        collaborative = wide.served
        ranker.assign_collaborative(collaborative)
    if distributed:
        stage_one, ranker = _plain_copies(spec, table, stage_one, ranker, train, config,
                                          shoppers)
    return Fitted(stage_one, ranker, history, collaborative, wide=wide)


def choose_deep_weight(scores: dict[float, float]) -> dict[str, float]:
    """The weight of the deep part's logit that scores best on validation, the larger on a tie
    (it carries the named reasons): what it adds to the wide part is earned there, or it is
    dropped (weight 0). Returns the scores by weight and the choice
    (``pipelines.steps.candidate.fit_and_judge`` scores each weight as served)."""
    chosen = max(scores, key=lambda w: (scores[w], w))
    return {"wide_only": scores.get(0.0, float("nan")),
            "wide_and_deep": scores.get(1.0, float("nan")),
            **{f"weight_{w:g}": score for w, score in sorted(scores.items())},
            "chosen": float(chosen)}


def _later(train: Interactions, config: TrainConfig) -> np.ndarray:
    return inner_split(train.timestamp, config.ranker_share, config.inner_split, config.seed)


def _ranker_rows(train: Interactions, config: TrainConfig) -> tuple[Interactions, Interactions]:
    """The wide ranker's training events (the later part of ``train``, items new to the
    shopper's history) and the earlier events its constants were fitted on."""
    later = _later(train, config)
    rows = train.subset(later)
    fresh = ~(rows.history == rows.item[:, None]).any(axis=1)
    return rows.subset(fresh), train.subset(~later)


def _wide_scale(matrix: np.ndarray, data: Interactions, sample: int = 4096) -> float:
    """A slot weight that puts B's scores of the training pairs at about unit spread in logits:
    Adam's small steps would take long to stretch raw EASE scores (~0.1) to logit scale."""
    rows = data.subset(np.arange(len(data)) < sample)
    scores = rows.bag_matrix(matrix.shape[0]) @ matrix
    spread = float(np.std(scores[np.arange(len(rows)), rows.item])) if len(rows) else 0.0
    spread = max(spread, float(np.std(scores)) if scores.size else 0.0)
    return 3.0 / spread if spread > 0 else 1.0


def _plain_copies(spec: FeatureSpec, table: ItemTable, retrieval: RetrievalModel,
                  ranker: RankingModel, data: Interactions, config: TrainConfig,
                  shoppers: ShopperTable | None) -> tuple[RetrievalModel, RankingModel]:
    """The trained models rebuilt outside the strategy, with the trained weights.

    Distributed variables can need every worker to read or save them (metric variables are
    all-reduced on read); plain copies let the chief evaluate, explain and save on its own.
    Every worker calls this at the same point, so the reads that do all-reduce line up.
    """
    sample = {k: v[:1] for k, v in (query_features(data) | {"item_id": data.item}).items()}
    sample[PURCHASES] = pad_left(data.subset(slice(0, 1)).bags())
    copy = retrieval_model(spec, table, config, shoppers)
    copy.query_tower(sample)
    copy.candidate_tower(sample["item_id"])
    copy.trainable = False  # as trained: the weights' order depends on it
    copy.set_weights(retrieval.get_weights())
    ranker_copy = ranking_model(spec, table, copy, config, shoppers)
    ranker_copy(sample)
    ranker_copy.set_weights(ranker.get_weights())
    return copy, ranker_copy


def _fit(model, train_set, valid_set, epochs, patience, stage, history, on_epoch,
         replicas: int = 1) -> None:
    stop = tf.keras.callbacks.EarlyStopping(
        monitor="val_loss" if valid_set is not None else "loss",
        patience=patience, restore_best_weights=True,
    )
    log = tf.keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: _record(stage, epoch, logs, history, on_epoch,
                                                 replicas)
    )
    model.fit(train_set, validation_data=valid_set, epochs=epochs, callbacks=[stop, log],
              verbose=2)


def _record(stage, epoch, logs, history, on_epoch, replicas: int = 1) -> None:
    """Keep an epoch's figures; under a strategy Keras sums them over replicas, so divide.

    (tfrs' train_step returns per-replica losses; Keras' "auto" reduction sums those, and the
    already-synchronised metric results, across replicas: the same sum on every worker, which
    keeps early stopping in step. Divided, they read as in one process.)
    """
    metrics = {k: float(v) / replicas for k, v in (logs or {}).items()}
    history[stage].append(metrics)
    if on_epoch is not None:
        on_epoch(stage, epoch, metrics)
