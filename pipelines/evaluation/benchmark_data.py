"""The benchmark protocols' data: ML-100K, Online Retail and an ingested data directory, each
as one train matrix and per-user test sets under a fixed split (see ``benchmark``).

Data sets are read from ``../shared/datasets`` (never copied into the repository).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from contracts.storage import DataPath, location
from models.collaborative import inner_split
from pipelines.data.sources.movielens import side_tables
from pipelines.data.sources.online_retail import is_cancellation, is_product

SHARED_DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
ML100K_DIR = SHARED_DATASETS / "ml-100k"
ONLINE_RETAIL_DIR = SHARED_DATASETS / "online-retail" / "by-day"

ML100K_SEED = 42
ML100K_TRAIN_ROWS = 80_000
RETAIL_SPLIT = pd.Timestamp("2011-11-01")

Protocol = str  # "random" (per-interaction split) or "temporal" (the latest share of time)
PROTOCOLS: dict[str, Protocol] = {"ml-100k": "random", "online-retail": "temporal"}


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
    catalogue: pd.DataFrame | None = None  # item_id, title, category, brand, price when known
    users: pd.DataFrame | None = None  # user_id, country, segments when known

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_test_interactions(self) -> int:
        return int(sum(len(t) for t in self.test_sets))


def matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def held_out_sets(
    train: sp.csr_matrix, users: np.ndarray, items: np.ndarray, n_users: int
) -> list[np.ndarray]:
    """Per user row: the distinct test items minus the user's train items."""
    test = matrix(users, items, train.shape)
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
    train = matrix(u[tr], i[tr], shape)
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
    # What the data set carries beside the ratings (the model's side features): the catalogue
    # (titles, genres) and the users' demographics, as the MovieLens source ingests them.
    first_rated = pd.to_datetime(ratings.groupby("item_id")["timestamp"].min(), unit="s",
                                 utc=True)
    first_rated.index = first_rated.index.astype(str)
    catalogue, users = side_tables(Path(path), first_rated)
    return BenchmarkData(
        name="ml-100k",
        train=train,
        test_sets=held_out_sets(train, u[te], i[te], len(user_ids)),
        item_ids=item_ids.tolist(),
        user_ids=user_ids.tolist(),
        interactions=interactions,
        catalogue=catalogue,
        users=users,
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
    train = matrix(u, i, shape)

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
        test_sets=held_out_sets(train, tu, ti, len(user_ids)),
        item_ids=item_ids.tolist(),
        user_ids=user_ids.tolist(),
        interactions=interactions,
    )


def holdout_mask(timestamps: pd.Series, share: float, protocol: Protocol, seed: int
                 ) -> np.ndarray:
    """The rows a protocol holds out: a seeded random ``share`` (random) or the latest ``share``
    of time (temporal), by the product's one split rule (``models.collaborative.inner_split``)."""
    if protocol not in ("random", "temporal"):
        raise ValueError(f"unknown protocol {protocol!r}: 'random' or 'temporal'")
    moments = pd.to_datetime(timestamps, utc=True).dt.tz_localize(None).to_numpy()
    return inner_split(moments, share, "random" if protocol == "random" else "time", seed)


def load_data_dir(data_dir: DataPath, protocol: Protocol, seed: int = ML100K_SEED,
                  test_share: float = 0.2) -> BenchmarkData:
    """An ingested data directory's positive events under a fixed protocol: ``random`` holds out
    a seeded random ``test_share`` of interactions (``holdout_mask``; users and items
    indexed over all of them, as ML-100K); ``temporal`` the latest ``test_share`` of time
    (indexed over train, test restricted to known users and items, as Online Retail)."""
    from pipelines.data.features import load_positive_events

    events, items, users = load_positive_events(location(data_dir))
    events = events.assign(timestamp=pd.to_datetime(events["timestamp"], utc=True))
    events = events.sort_values(["timestamp", "event_id"], kind="stable").reset_index(drop=True)
    is_test = holdout_mask(events["timestamp"], test_share, protocol, seed)
    indexed = events if protocol == "random" else events.loc[~is_test]
    user_ids = np.sort(indexed["user_id"].astype(str).unique())
    item_ids = np.sort(indexed["item_id"].astype(str).unique())
    train_rows, test_rows = events.loc[~is_test], events.loc[is_test]
    known = test_rows["user_id"].astype(str).isin(user_ids) & test_rows["item_id"].astype(
        str).isin(item_ids)
    test_rows = test_rows.loc[known]
    shape = (len(user_ids), len(item_ids))
    u = np.searchsorted(user_ids, train_rows["user_id"].astype(str).to_numpy())
    i = np.searchsorted(item_ids, train_rows["item_id"].astype(str).to_numpy())
    train = matrix(u, i, shape)
    tu = np.searchsorted(user_ids, test_rows["user_id"].astype(str).to_numpy())
    ti = np.searchsorted(item_ids, test_rows["item_id"].astype(str).to_numpy())
    interactions = pd.DataFrame({
        "user_id": train_rows["user_id"].astype(str).to_numpy(),
        "item_id": train_rows["item_id"].astype(str).to_numpy(),
        "timestamp": train_rows["timestamp"].to_numpy(), "user_idx": u, "item_idx": i,
        "rating": pd.to_numeric(train_rows["rating"], errors="coerce").astype("Float64")
        .to_numpy(dtype=float, na_value=np.nan) if "rating" in train_rows else np.nan,
    })
    catalogue = items.assign(item_id=items["item_id"].astype(str))
    catalogue = catalogue[catalogue["item_id"].isin(item_ids)][
        [c for c in ("item_id", "title", "category", "brand", "price", "tags") if c in items]]
    return BenchmarkData(f"{location(data_dir).name} ({protocol})", train,
                         held_out_sets(train, tu, ti, len(user_ids)), item_ids.tolist(),
                         user_ids.tolist(), interactions, catalogue.reset_index(drop=True),
                         users)
