"""The two fixed benchmark protocols on the real data: split sizes, leakage, and the anchors.

The anchors are the baseline figures the TFRS model must beat; if a protocol detail drifts,
these tests say so before a misleading comparison is published. They skip with a message when
../shared/datasets is absent (a user's fresh clone).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.baselines import LAMBDA_GRID
from pipelines.evaluation.benchmark import inner_split, run_baselines, strongest_ease
from pipelines.evaluation.benchmark_data import BenchmarkData, load_ml100k, load_online_retail
from tests.conftest import shared_dataset

# NDCG@10 measured when the protocols were fixed (EASE at the λ each was tuned to then).
ANCHORS = {
    "ml-100k": {"popularity": 0.217, "ease_lambda_500": 0.441},
    "online-retail": {"popularity": 0.038, "ease_lambda_100": 0.100},
}
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def ml100k() -> BenchmarkData:
    return load_ml100k(shared_dataset("ml-100k"))


@pytest.fixture(scope="module")
def retail() -> BenchmarkData:
    return load_online_retail(shared_dataset("online-retail/by-day"))


def _assert_no_leakage(data: BenchmarkData) -> None:
    assert len(data.test_sets) == data.n_users
    for row, test in enumerate(data.test_sets):
        seen = data.train.indices[data.train.indptr[row] : data.train.indptr[row + 1]]
        assert not np.intersect1d(test, seen).size, f"user row {row} has train items in test"
        assert len(np.unique(test)) == len(test)


def test_ml100k_split(ml100k: BenchmarkData) -> None:
    assert (ml100k.n_users, ml100k.n_items) == (943, 1682)
    assert ml100k.train.shape == (943, 1682)
    assert ml100k.train.nnz == 80_000
    assert ml100k.n_test_interactions == 20_000
    assert len(ml100k.interactions) == 80_000
    assert {"user_id", "item_id", "timestamp", "rating"} <= set(ml100k.interactions.columns)
    _assert_no_leakage(ml100k)


def test_online_retail_split(retail: BenchmarkData) -> None:
    assert (retail.n_users, retail.n_items) == (3970, 3607)
    assert retail.train.nnz == 220_880  # distinct (customer, product) pairs before November
    assert retail.n_test_interactions == 32_800
    assert sum(len(t) > 0 for t in retail.test_sets) == 1440
    assert {"user_id", "item_id", "timestamp"} <= set(retail.interactions.columns)
    assert retail.interactions["timestamp"].max() < pd.Timestamp("2011-11-01", tz="UTC")
    assert all(str(code)[:5].isdigit() for code in retail.item_ids)
    _assert_no_leakage(retail)


@pytest.mark.parametrize("dataset", ["ml-100k", "online-retail"])
def test_baselines_reproduce_anchors(dataset: str, request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue("ml100k" if dataset == "ml-100k" else "retail")
    results = run_baselines(data, dataset)
    for model, anchor in ANCHORS[dataset].items():
        assert results[model]["ndcg@10"] == pytest.approx(anchor, abs=TOLERANCE), model
        assert results[model]["train_seconds"] >= 0
    assert results["ease"]["ndcg@10"] > results["popularity"]["ndcg@10"]
    # The floor's λ is chosen on an inner split of train, from the grid, and reported.
    assert results["ease"]["lambda"] in LAMBDA_GRID
    assert {f"inner_ndcg@10_lambda_{lam:g}" for lam in LAMBDA_GRID} <= results["ease"].keys()
    assert {"ease", "ease_lambda_100", "ease_lambda_500"} <= results.keys()
    assert strongest_ease(results).startswith("ease")


@pytest.mark.parametrize("protocol", ["random", "temporal"])
def test_the_inner_split_holds_out_part_of_train_only(ml100k: BenchmarkData,
                                                      protocol: str) -> None:
    fit, holdout = inner_split(ml100k, protocol)
    assert fit.nnz + sum(len(h) for h in holdout) <= ml100k.train.nnz
    assert 0.05 * ml100k.train.nnz < sum(len(h) for h in holdout) <= 0.1 * ml100k.train.nnz
    for row, held in enumerate(holdout):
        assert not np.intersect1d(held, fit[row].indices).size
        assert set(held) <= set(ml100k.train[row].indices)


def test_the_benchmark_reads_the_shared_data_sets_beside_the_checkout() -> None:
    """Where the protocols look for ``../shared/datasets``: the checkout's sibling, wherever
    the module sits in the package."""
    from pipelines.evaluation.benchmark_data import SHARED_DATASETS as used
    from tests.conftest import SHARED_DATASETS

    assert used == SHARED_DATASETS
