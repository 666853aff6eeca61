"""The two fixed offline benchmark protocols, and the baselines measured on them.

Every model, baseline or neural, is judged on exactly these splits through ``evaluate_model``,
so figures are comparable across runs and commits:

* **ML-100K**: a seeded random 80/20 split of the 100,000 ratings (every rating counts as an
  interaction); candidates are all items the user did not rate in train.
* **Online Retail**: a temporal split at 2011-11-01; the test set is what known customers bought
  afterwards of known items they had not bought before, i.e. the "what next" question a shop asks.

Data sets are read from ``../shared/datasets`` (never copied into the repository).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.baselines import EASE, Popularity, Recommender, top_k
from pipelines.evaluate import evaluate_topk
from pipelines.sources.online_retail import is_cancellation, is_product

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
ML100K_DIR = SHARED_DATASETS / "ml-100k"
ONLINE_RETAIL_DIR = SHARED_DATASETS / "online-retail" / "by-day"

ML100K_SEED = 42
ML100K_TRAIN_ROWS = 80_000
RETAIL_SPLIT = pd.Timestamp("2011-11-01")
# Tuned once per data set; fixed so the anchors stay comparable.
EASE_LAMBDA: dict[str, float] = {"ml-100k": 500.0, "online-retail": 100.0}
SCORE_CHUNK = 1024  # users scored at once: bounds memory at chunk x n_items floats


@dataclass
class BenchmarkData:
    """One protocol's split: everything a model needs to train and be evaluated.

    ``train`` is binary users x items (rows follow ``user_ids``, columns ``item_ids``);
    ``test_sets[u]`` holds item column indices held out for user row ``u`` (empty when none);
    ``interactions`` holds the raw train rows (original ids plus ``user_idx``/``item_idx``) for
    models that train on events rather than on a matrix.
    """

    name: str
    train: sp.csr_matrix
    test_sets: list[np.ndarray]
    item_ids: list[Any]
    user_ids: list[Any]
    interactions: pd.DataFrame

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_test_interactions(self) -> int:
        return int(sum(len(t) for t in self.test_sets))


def _matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _test_sets(
    train: sp.csr_matrix, users: np.ndarray, items: np.ndarray, n_users: int
) -> list[np.ndarray]:
    """Per user row: the distinct test items minus the user's train items."""
    test = _matrix(users, items, train.shape)
    test = test - test.multiply(train)  # drop anything already seen in train
    test.eliminate_zeros()
    test.sort_indices()
    return [
        test.indices[test.indptr[u] : test.indptr[u + 1]].astype(np.int64) for u in range(n_users)
    ]


def load_ml100k(path: Path = ML100K_DIR) -> BenchmarkData:
    """MovieLens 100K, seeded random 80/20 split; users and items indexed over the whole file."""
    ratings = pd.read_csv(
        Path(path) / "u.data",
        sep="\t",
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype="int64",
    )
    perm = np.random.default_rng(ML100K_SEED).permutation(len(ratings))
    user_ids = np.sort(ratings["user_id"].unique())
    item_ids = np.sort(ratings["item_id"].unique())
    u = np.searchsorted(user_ids, ratings["user_id"].to_numpy())
    i = np.searchsorted(item_ids, ratings["item_id"].to_numpy())
    tr, te = perm[:ML100K_TRAIN_ROWS], perm[ML100K_TRAIN_ROWS:]
    shape = (len(user_ids), len(item_ids))
    train = _matrix(u[tr], i[tr], shape)
    interactions = ratings.iloc[tr].reset_index(drop=True)
    interactions = pd.DataFrame(
        {
            "user_id": interactions["user_id"],
            "item_id": interactions["item_id"],
            "timestamp": pd.to_datetime(interactions["timestamp"], unit="s", utc=True),
            "rating": interactions["rating"],
            "user_idx": u[tr],
            "item_idx": i[tr],
        }
    )
    return BenchmarkData(
        name="ml-100k",
        train=train,
        test_sets=_test_sets(train, u[te], i[te], len(user_ids)),
        item_ids=item_ids.tolist(),
        user_ids=user_ids.tolist(),
        interactions=interactions,
    )


def _read_retail(path: Path) -> pd.DataFrame:
    files = sorted(Path(path).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no *.csv day files under {path}")
    frames = [
        pd.read_csv(
            f,
            dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "Country": str},
            keep_default_na=False,
            na_values={"CustomerID": [""]},
        )
        for f in files
    ]
    return pd.concat(frames, ignore_index=True)


def clean_online_retail(raw: pd.DataFrame) -> pd.DataFrame:
    """Purchases of real products by known customers, with positive quantity and price.

    Cancellations and product lines are told apart by the source adapter's rules, so the
    benchmark and ingestion agree on what a purchase of a product is.
    """
    keep = (
        ~is_cancellation(raw["InvoiceNo"])
        & raw["CustomerID"].notna()
        & (pd.to_numeric(raw["Quantity"], errors="coerce") > 0)
        & (pd.to_numeric(raw["UnitPrice"], errors="coerce") > 0)
        & is_product(raw["StockCode"])
    )
    df = raw.loc[keep]
    return pd.DataFrame(
        {
            "user_id": df["CustomerID"].astype("float64").astype("int64").to_numpy(),
            "item_id": df["StockCode"].to_numpy(),
            "timestamp": pd.to_datetime(df["InvoiceDate"], format="%Y-%m-%d %H:%M:%S").to_numpy(),
            "quantity": pd.to_numeric(df["Quantity"]).astype("int64").to_numpy(),
        }
    )


def load_online_retail(path: Path = ONLINE_RETAIL_DIR) -> BenchmarkData:
    """UCI Online Retail, temporal split at 2011-11-01; users and items indexed over train."""
    events = clean_online_retail(_read_retail(path))
    is_train = events["timestamp"] < RETAIL_SPLIT
    train_rows, test_rows = events.loc[is_train], events.loc[~is_train]
    user_ids = np.sort(train_rows["user_id"].unique())
    item_ids = np.sort(train_rows["item_id"].unique())
    shape = (len(user_ids), len(item_ids))
    u = np.searchsorted(user_ids, train_rows["user_id"].to_numpy())
    i = np.searchsorted(item_ids, train_rows["item_id"].to_numpy())
    train = _matrix(u, i, shape)

    known = test_rows["user_id"].isin(user_ids) & test_rows["item_id"].isin(item_ids)
    test_rows = test_rows.loc[known]
    tu = np.searchsorted(user_ids, test_rows["user_id"].to_numpy())
    ti = np.searchsorted(item_ids, test_rows["item_id"].to_numpy())

    interactions = train_rows.reset_index(drop=True).assign(
        timestamp=lambda d: d["timestamp"].dt.tz_localize("UTC"), user_idx=u, item_idx=i
    )
    return BenchmarkData(
        name="online-retail",
        train=train,
        test_sets=_test_sets(train, tu, ti, len(user_ids)),
        item_ids=item_ids.tolist(),
        user_ids=user_ids.tolist(),
        interactions=interactions,
    )


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


def run_baselines(data: BenchmarkData, dataset: str, k: int = 10) -> dict[str, dict[str, float]]:
    """Fit and evaluate popularity and EASE; reports metrics at 5, 10, 20 and k, plus timings."""
    if dataset not in EASE_LAMBDA:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(EASE_LAMBDA)}")
    k_values = tuple(sorted({5, 10, 20, k}))
    models: dict[str, Recommender] = {
        "popularity": Popularity(),
        "ease": EASE(lambda_=EASE_LAMBDA[dataset]),
    }
    results: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(data.train)
        fitted = time.perf_counter()
        metrics = evaluate_model(model, data, k_values)
        metrics["train_seconds"] = fitted - start
        metrics["eval_seconds"] = time.perf_counter() - fitted
        results[name] = metrics
    return results


class TwoStageOnProtocol:
    """The TFRS two-stage model behind the baselines' ``fit``/``score`` interface.

    It trains on the protocol's train interactions (the last 10% by time held out for early
    stopping), and scores every protocol item: the ranker's top ``retrieve_n`` candidates come
    first in ranker order, the rest follow in retrieval order.
    """

    def __init__(self, data: BenchmarkData, config=None, leave_one_out: bool = False) -> None:
        self.data = data
        self.config = config
        self.leave_one_out = leave_one_out

    def fit(self, train: sp.csr_matrix) -> TwoStageOnProtocol:
        from models.fit import TrainConfig, fit_two_stage
        from models.inputs import latest_histories
        from models.two_stage import TwoStageRecommender
        from pipelines.features import build_features

        config = self.config or TrainConfig()
        rows = self.data.interactions
        events = pd.DataFrame({
            "event_id": np.arange(len(rows)).astype(str),
            "user_id": rows["user_id"].astype(str).to_numpy(),
            "item_id": rows["item_id"].astype(str).to_numpy(),
            "timestamp": pd.to_datetime(rows["timestamp"], utc=True).to_numpy(),
        })
        item_keys = [str(i) for i in self.data.item_ids]
        items = pd.DataFrame({"item_id": item_keys, "title": item_keys, "category": "other",
                              "brand": None, "price": np.nan})
        users = pd.DataFrame({"user_id": events["user_id"].unique()})
        features = build_features(events, items, users, validation_share=0.1,
                                  history_length=config.history_length,
                                  leave_one_out=self.leave_one_out)
        fitted = fit_two_stage(features.spec, features.table, features.train, features.valid,
                               config)
        spec = features.spec
        self.recommender = TwoStageRecommender(
            spec, features.table, fitted.retrieval, fitted.ranker, items,
            latest_histories(spec, events), {}, retrieve_n=config.retrieve_n,
        )
        self.columns = spec.items.lookup(item_keys)  # protocol column -> model item id
        self.user_keys = [str(u) for u in self.data.user_ids]
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        rec = self.recommender
        features = rec.features_for_many([self.user_keys[r] for r in user_rows])
        retrieval = rec.retrieval_scores(features)
        exclude = self.data.train[user_rows]
        by_column = retrieval[:, self.columns]
        by_column[exclude.nonzero()] = -np.inf
        n = min(rec.retrieve_n, by_column.shape[1] - 1)
        candidates = np.argpartition(-by_column, n - 1, axis=1)[:, :n]
        ranked = rec.rank_pairs(features, self.columns[candidates])
        scores = by_column - (np.nanmax(np.abs(by_column[np.isfinite(by_column)])) + 1e3)
        bonus = 1e6 + ranked
        valid = np.isfinite(np.take_along_axis(by_column, candidates, 1))
        np.put_along_axis(scores, candidates, np.where(valid, bonus, -np.inf), 1)
        return scores


def benchmark(dataset: str, path: Path | None = None) -> dict:
    """The fixed protocol for ``dataset``: baselines and the TFRS model, with timings."""
    loader = {"ml-100k": load_ml100k, "online-retail": load_online_retail}[dataset]
    start = time.perf_counter()
    data = loader(path) if path else loader()
    load_seconds = time.perf_counter() - start
    baselines = run_baselines(data, dataset)
    start = time.perf_counter()
    # MovieLens' split is random, so histories are "all other ratings"; Online Retail's is
    # temporal, so histories are what came before.
    from models.fit import TrainConfig

    random_split = dataset == "ml-100k"
    config = TrainConfig(history_length=200 if random_split else 50,
                         use_context=not random_split, ranker_excluded=())
    model = TwoStageOnProtocol(data, config, leave_one_out=random_split).fit(data.train)
    fitted = time.perf_counter()
    metrics = evaluate_model(model, data, (5, 10, 20))
    metrics["train_seconds"] = fitted - start
    metrics["eval_seconds"] = time.perf_counter() - fitted
    return {
        "dataset": dataset,
        "users": data.n_users,
        "items": data.n_items,
        "train_interactions": int(data.train.nnz),
        "test_interactions": data.n_test_interactions,
        "load_seconds": round(load_seconds, 2),
        "model": metrics,
        "baselines": baselines,
        "beats_ease_ndcg@10": metrics["ndcg@10"] >= baselines["ease"]["ndcg@10"],
    }
