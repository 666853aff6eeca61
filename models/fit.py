"""Training both stages on interaction arrays: pure computation, no file or network I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
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

EpochCallback = Callable[[str, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; logged whole as MLflow params."""

    seed: int = 42
    dim: int = 64
    temperature: float = 0.2
    history_dropout: float = 0.5
    dropout: float = 0.2
    batch_size: int = 1024
    learning_rate: float = 0.003
    retrieval_epochs: int = 8
    ranking_epochs: int = 4
    patience: int = 2
    negatives: int = 4  # per positive
    # Why each default: docs/decisions.md (the measurements behind them).
    hard_share: float = 0.0  # share of negatives from retrieval's top: they are future buys
    hard_pool: int = 50
    negative_power: float = 0.0  # easy negatives ~ popularity^power: uniform
    retrieve_n: int = 200
    history_length: int = 50
    use_user_id: bool = False  # in the query tower the id memorises; histories generalise
    use_context: bool = True  # hour and weekday
    # Summary features that would take the attribution from the named preferences.
    ranker_excluded: tuple[str, ...] = ("retrieval_score", "popularity", "user_id")
    # The wide item-item part (EASE's B, models/item_item.py), off above item_item_max_items
    # (B is n x n floats); λ 0: chosen on the inner split over LAMBDA_GRID.
    item_item: bool = True
    item_item_max_items: int = 20_000
    ease_lambda: float = 0.0
    item_item_n: int = 100  # EASE's top items added to retrieval's candidates
    pool_share: float = 0.0  # negatives from EASE's pool (in-pool positives only)
    # The ranker learns on the training events' latest share (``inner_split``: time, or random
    # for data split at random) with B and the trend fitted on the rest: as it serves.
    ranker_share: float = 0.2
    # The deep part's logit weight: the one of these that scores best on validation, as served
    # (``choose_deep_weight``).
    deep_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    inner_split: str = "time"
    trend_days: int = 7
    # What the wide part reads: the whole record of distinct purchases (True) or the deep
    # part's recent window (False); the default grid trains both.
    item_item_record: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Fitted:
    retrieval: RetrievalModel
    ranker: RankingModel
    history: dict[str, list[dict[str, float]]]  # stage -> per-epoch metrics
    collaborative: Collaborative | None = None  # what the ranker's constants were fitted to
    # The deep part's weight chosen on validation (``choose_deep_weight``), when there is a
    # wide part to weigh it against.
    deep_choice: dict[str, float] | None = None


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


def query_features(data: Interactions) -> dict[str, np.ndarray]:
    return {"user_id": data.user, "history": data.history, "hour": data.hour,
            "day_of_week": data.day_of_week}


# What retrieval's training reads of the config: candidates that agree on these (the default
# grid's do) can share one trained retrieval model (``FittedRetrieval``).
RETRIEVAL_FIELDS = ("seed", "dim", "temperature", "history_dropout", "dropout", "batch_size",
                    "learning_rate", "retrieval_epochs", "patience", "use_user_id",
                    "use_context", "history_length")


def retrieval_key(config: TrainConfig) -> dict:
    return {name: getattr(config, name) for name in RETRIEVAL_FIELDS}


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
    _fit(retrieval, _retrieval_set(train, table, config, batch, shuffle=True),
         _retrieval_set(valid, table, config, batch, shuffle=False), config.retrieval_epochs,
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
) -> Fitted:
    """Train retrieval, then the ranker on top of it; early-stop each on ``valid``.

    ``shoppers``: the shoppers' attributes per user id (none when omitted). ``retrieval``: stage
    one already trained with this ``retrieval_key`` (another candidate's); only the ranker is
    trained then. The ranker is seeded on its own, so it starts the same either way.

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
        rank_train, earlier, collaborative = _inner_collaborative(spec, train, config)
        ranker.assign_collaborative(collaborative)
        ranker.item_item.set_scale(_wide_scale(collaborative.matrix, rank_train))
    stage_one = retrieval.model
    _fit(ranker, _ranking_set(stage_one, rank_train, table, config, rng, batch, shuffle=True,
                              earlier=earlier, collaborative=collaborative),
         _ranking_set(stage_one, valid, table, config, rng, batch, shuffle=False, earlier=train,
                      collaborative=collaborative),
         config.ranking_epochs, config.patience, "ranking", history, on_epoch,
         strategy.num_replicas_in_sync)
    if collaborative is not None:
        # As served: B and the trend as of the end of the training events.
        inner = collaborative
        collaborative = fit_collaborative(train.user, train.item, train.timestamp,
                                          spec.items.size, inner.lambda_, config.trend_days)
        ranker.assign_collaborative(collaborative)
    if distributed:
        stage_one, ranker = _plain_copies(spec, table, stage_one, ranker, train, config,
                                          shoppers)
    return Fitted(stage_one, ranker, history, collaborative)


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


def _inner_collaborative(spec: FeatureSpec, train: Interactions, config: TrainConfig
                         ) -> tuple[Interactions, Interactions, Collaborative]:
    """The ranker's training events (the later part of ``train``, items new to the shopper's
    history), the earlier events, and B and the trend fitted on the earlier ones alone: B never
    saw the pairs the ranker learns from, as it will not have seen the ones it serves."""
    later = inner_split(train.timestamp, config.ranker_share, config.inner_split, config.seed)
    n = spec.items.size
    lambda_ = config.ease_lambda or choose_lambda(train.user, train.item, later, n)
    early = train.subset(~later)
    collaborative = fit_collaborative(early.user, early.item, early.timestamp, n, lambda_,
                                      config.trend_days)
    rows = train.subset(later)
    fresh = ~(rows.history == rows.item[:, None]).any(axis=1)
    return rows.subset(fresh), early, collaborative


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


def _batches(size: int, rows: Callable[[tf.Tensor], dict[str, tf.Tensor]],
             config: TrainConfig, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    """Global batches of ``size`` rows; ``rows`` gathers a batch's rows by index.

    Bounded memory: the data set shuffles row numbers (8 bytes a row) and gathers each batch
    from arrays held once, instead of slicing the arrays into a shuffle buffer of full copies.
    The order is the same as shuffling the rows themselves: tf.data's shuffle order depends on
    the seed and the number of elements only. A strategy splits each batch over replicas,
    sharded by element (DATA); every worker builds the same (seeded) data set, so each gets its
    own part of every batch (FILE sharding is impossible for in-memory arrays).
    """
    dataset = tf.data.Dataset.range(size)
    if shuffle:
        dataset = dataset.shuffle(size, seed=config.seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (dataset.batch(batch_size).map(rows, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE).with_options(options))


def _gather(columns: dict[str, np.ndarray]) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    held = {k: tf.constant(v) for k, v in columns.items()}
    return lambda rows: {k: tf.gather(v, rows) for k, v in held.items()}


def _gather_bags(data: Interactions) -> Callable[[tf.Tensor], tf.Tensor]:
    """Row numbers -> those rows' distinct past purchases, right-aligned and as wide as the
    batch's longest (``pad_left`` in the graph): the bags are sliced from the one shared array
    per batch, never held per row."""
    flat = tf.constant(data.bag_items)
    starts = tf.constant(data.bag_start.astype(np.int64))
    lengths = tf.constant(data.bag_length.astype(np.int64))

    def gather(rows: tf.Tensor) -> tf.Tensor:
        n, start = tf.gather(lengths, rows), tf.gather(starts, rows)
        width = tf.maximum(tf.reduce_max(n), 1)
        ragged = tf.ragged.range(n)
        row, j = ragged.value_rowids(), ragged.flat_values
        where = tf.stack([row, width - tf.gather(n, row) + j], axis=1)
        values = tf.gather(flat, tf.gather(start, row) + j)
        return tf.scatter_nd(where, values, tf.stack([tf.size(rows, out_type=tf.int64), width]))

    return gather


def _no_bags(rows: tf.Tensor) -> tf.Tensor:
    return tf.zeros(tf.stack([tf.size(rows), 1]), tf.int32)


def _retrieval_set(data: Interactions, table: ItemTable, config: TrainConfig, batch_size: int,
                   shuffle: bool):
    if len(data) == 0:
        return None
    probability = np.maximum(table.popularity[data.item], 1e-6).astype(np.float32)
    features = query_features(data) | {"item_id": data.item,
                                       "sampling_probability": probability}
    return _batches(len(data), _gather(features), config, batch_size, shuffle)


def _random_items(rng: np.random.Generator, n_items: int, shape: tuple[int, int],
                  weights: np.ndarray | None) -> np.ndarray:
    """Items 1..n-1 (never [UNK]), uniform or by ``weights``."""
    if weights is not None:
        return rng.choice(n_items, size=shape, p=weights)
    return rng.integers(1, n_items, shape)


def _ranking_set(retrieval: RetrievalModel, data: Interactions, table: ItemTable,
                 config: TrainConfig, rng: np.random.Generator, batch_size: int, shuffle: bool,
                 earlier: Interactions | None = None,
                 collaborative: Collaborative | None = None):
    """Positives plus negatives: ``hard_share`` from the candidates the ranker will see (EASE's
    top items given the history when ``collaborative`` is set, else retrieval's), the rest random.

    Hard negatives never include any item the user has a positive event with, in ``data`` or in
    ``earlier`` (the training events, when ``data`` is the validation window): labelling a user's
    other purchases as negatives would teach the ranker to demote exactly what they like. A user
    with fewer eligible items than ``hard_pool`` gets hard negatives from those only, and random
    ones when there are none.
    """
    if len(data) == 0:
        return None
    known_users = np.concatenate([data.user, earlier.user]) if earlier is not None else data.user
    known_items = np.concatenate([data.item, earlier.item]) if earlier is not None else data.item
    positives = sp.csr_matrix(
        (np.ones(len(known_users), bool), (known_users, known_items)),
        shape=(int(known_users.max()) + 1, len(table.item_id)),
    )
    n_items = len(table.item_id)
    share = config.hard_share if collaborative is None else config.pool_share
    hard = int(round(config.negatives * share))
    easy = config.negatives - hard
    weights = np.power(table.popularity.astype(np.float64), config.negative_power)
    weights[0] = 0.0
    weights = weights / weights.sum() if weights.sum() > 0 else None
    pool = min(config.hard_pool if collaborative is None else config.item_item_n, n_items - 1)
    negatives, in_pool = [], []
    candidates = retrieval.candidate_tower(tf.range(n_items)) if collaborative is None else None
    for start in range(0, len(data), 4096):
        part = slice(start, start + 4096)
        if collaborative is not None:
            scores = np.asarray(data.subset(part).bag_matrix(n_items) @ collaborative.matrix)
        else:
            query = retrieval.query_tower(
                {k: tf.constant(v[part]) for k, v in query_features(data).items()},
                training=False)
            scores = tf.matmul(query, candidates, transpose_b=True).numpy()
        scores[:, 0] = -np.inf
        at = (np.arange(scores.shape[0]), data.item[part])
        own = scores[at].copy()
        known = positives[data.user[part]].nonzero()
        scores[known] = -np.inf
        # Is the positive among the pool of candidates the ranker will be shown (known positives
        # aside, as served)? Without the wide part every row counts.
        in_pool.append((np.sum(scores > own[:, None], axis=1) < pool) & np.isfinite(own)
                       if collaborative is not None and hard else np.ones(len(own), bool))
        scores[at] = -np.inf
        top = np.argpartition(-scores, pool - 1, axis=1)[:, :pool]
        rows = np.arange(len(top))[:, None]
        # Eligible (finite-score) candidates first; draw only among a row's eligible ones.
        eligible = np.isfinite(scores[rows, top])
        top = np.take_along_axis(top, np.argsort(~eligible, axis=1, kind="stable"), axis=1)
        counts = eligible.sum(axis=1)
        draws = (rng.random((len(top), hard)) * np.maximum(counts, 1)[:, None]).astype(np.int64)
        picks = top[rows, draws]
        randoms = _random_items(rng, n_items, (len(top), easy + hard), weights)
        picks = np.where(counts[:, None] > 0, picks, randoms[:, easy:])
        negatives.append(np.concatenate([picks, randoms[:, :easy]], axis=1))
    keep = np.concatenate(in_pool)
    if not keep.any():
        keep[:] = True  # nothing in the pool (a tiny or cold history): learn from every row
    negative = np.concatenate(negatives).astype(np.int32)[keep]
    data = data.subset(keep)
    # Row r is pair r % repeats of positive r // repeats: the positive first (label 1), then its
    # negatives. The shopper's features are held once per positive, not once per pair.
    repeats = 1 + config.negatives
    query = _gather(query_features(data))
    # Only the wide part reading whole records needs them: else one padding column.
    bags = (_gather_bags(data) if collaborative is not None and config.item_item_record
            else _no_bags)
    items = tf.constant(np.concatenate([data.item[:, None], negative], axis=1).reshape(-1))

    def rows(index: tf.Tensor) -> dict[str, tf.Tensor]:
        return query(index // repeats) | {
            PURCHASES: bags(index // repeats),
            "item_id": tf.gather(items, index),
            "label": tf.cast(tf.equal(index % repeats, 0), tf.float32)}

    return _batches(len(data) * repeats, rows, config, batch_size, shuffle)
