"""The two stages' training data as tf.data pipelines over interaction arrays held once.

Retrieval learns from (query, bought item) rows with in-batch negatives; the ranker from each
positive with sampled negatives (hard ones from the candidates it will be shown). Pure: no file
or network I/O.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from models.collaborative import Collaborative
from models.inputs import Interactions, ItemTable
from models.ranking import PURCHASES
from models.retrieval import RetrievalModel
from models.train_config import TrainConfig


def query_features(data: Interactions) -> dict[str, np.ndarray]:
    return {"user_id": data.user, "history": data.history, "hour": data.hour,
            "day_of_week": data.day_of_week}


def batches(size: int, rows: Callable[[tf.Tensor], dict[str, tf.Tensor]],
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


def gather(columns: dict[str, np.ndarray]) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    held = {k: tf.constant(v) for k, v in columns.items()}
    return lambda rows: {k: tf.gather(v, rows) for k, v in held.items()}


def gather_bags(data: Interactions) -> Callable[[tf.Tensor], tf.Tensor]:
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


def no_bags(rows: tf.Tensor) -> tf.Tensor:
    return tf.zeros(tf.stack([tf.size(rows), 1]), tf.int32)


def retrieval_set(data: Interactions, table: ItemTable, config: TrainConfig, batch_size: int,
                   shuffle: bool):
    if len(data) == 0:
        return None
    probability = np.maximum(table.popularity[data.item], 1e-6).astype(np.float32)
    features = query_features(data) | {"item_id": data.item,
                                       "sampling_probability": probability}
    return batches(len(data), gather(features), config, batch_size, shuffle)


def random_items(rng: np.random.Generator, n_items: int, shape: tuple[int, int],
                  weights: np.ndarray | None) -> np.ndarray:
    """Items 1..n-1 (never [UNK]), uniform or by ``weights``."""
    if weights is not None:
        return rng.choice(n_items, size=shape, p=weights)
    return rng.integers(1, n_items, shape)


def ranking_set(retrieval: RetrievalModel, data: Interactions, table: ItemTable,
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
        if hard == 0:  # random negatives only: no candidate needs scoring (the default)
            rows = len(data.item[part])
            in_pool.append(np.ones(rows, bool))
            negatives.append(random_items(rng, n_items, (rows, easy), weights))
            continue
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
        randoms = random_items(rng, n_items, (len(top), easy + hard), weights)
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
    query = gather(query_features(data))
    # Only the wide part reading whole records needs them: else one padding column.
    bags = (gather_bags(data) if collaborative is not None and config.item_item_record
            else no_bags)
    items = tf.constant(np.concatenate([data.item[:, None], negative], axis=1).reshape(-1))

    def rows(index: tf.Tensor) -> dict[str, tf.Tensor]:
        return query(index // repeats) | {
            PURCHASES: bags(index // repeats),
            "item_id": tf.gather(items, index),
            "label": tf.cast(tf.equal(index % repeats, 0), tf.float32)}

    return batches(len(data) * repeats, rows, config, batch_size, shuffle)
