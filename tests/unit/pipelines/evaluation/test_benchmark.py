"""EASE above ``ease_max_items``: fitted on the most popular items only, wherever it is fitted,
and said so in its MLflow run, the baselines step's result and the benchmark's output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from mlflow.tracking import MlflowClient

from contracts.settings import Settings
from pipelines.data.features import BATCHES, build_features, save_features
from pipelines.evaluation.benchmark import ease_restriction, run_baselines
from pipelines.evaluation.benchmark_data import BenchmarkData
from pipelines.steps.baselines import train_baselines
from tests.unit.pipelines.steps.test_baselines import ITEMS, small_shop

MAX_ITEMS = 12


def test_the_baselines_step_restricts_ease_and_says_so(local_store: Settings, tmp_path) -> None:
    features = build_features(*small_shop(), history_length=4)
    uri = save_features(features, tmp_path / "features")
    (tmp_path / "features" / BATCHES).write_text(json.dumps(
        [{"batch": "b1", "content_hash": "h1", "status": "accepted"}]))
    settings = local_store.with_values(ease_max_items=MAX_ITEMS, ease_lambda_grid=[1.0, 100.0],
                                       dataset="ease-restricted")

    baselines = train_baselines(settings, uri)

    columns = features.spec.items.size  # the catalogue plus the unknown item
    assert columns > MAX_ITEMS
    assert baselines["ease"]["restricted_items"] == MAX_ITEMS
    assert baselines["ease"]["catalogue_items"] == columns
    assert "restricted_items" not in baselines["popularity"]
    client = MlflowClient()
    experiment = client.get_experiment_by_name("shoprec-ease-restricted")
    runs = {r.data.tags["model_family"]: r for r in client.search_runs([experiment.experiment_id])}
    ease = runs["ease"].data
    assert ease.tags["ease_restricted_to_top_items"] == str(MAX_ITEMS)
    assert ease.params["restricted_to_top_items"] == str(MAX_ITEMS)
    assert ease.params["catalogue_items"] == str(columns)
    assert "ease_restricted_to_top_items" not in runs["popularity"].data.tags
    assert "catalogue_items" not in ease.metrics, "the scope is a param, not a metric"


def test_the_baselines_step_says_nothing_when_ease_covers_the_catalogue(
        local_store: Settings, tmp_path) -> None:
    uri = save_features(build_features(*small_shop(), history_length=4), tmp_path / "features")
    (tmp_path / "features" / BATCHES).write_text(json.dumps(
        [{"batch": "b1", "content_hash": "h1", "status": "accepted"}]))
    settings = local_store.with_values(ease_lambda_grid=[], dataset="ease-full")

    baselines = train_baselines(settings, uri)

    assert "restricted_items" not in baselines["ease"]
    assert baselines["ease"]["catalogue_items"] == ITEMS + 1


def _protocol_data(users: int = 40) -> BenchmarkData:
    """Each shopper buys a few of 30 items; item popularity falls with the item's index."""
    rng = np.random.default_rng(1)
    rows, columns = [], []
    for user in range(users):
        picked = rng.choice(ITEMS, 6, replace=False, p=np.linspace(2, 0.1, ITEMS) / np.linspace(
            2, 0.1, ITEMS).sum())
        rows += [user] * 6
        columns += list(picked)
    u, i = np.array(rows), np.array(columns)
    held = np.arange(len(u)) % 6 == 0
    train = sp.csr_matrix((np.ones((~held).sum()), (u[~held], i[~held])), shape=(users, ITEMS))
    test_sets = [np.setdiff1d(i[held & (u == r)], train[r].indices) for r in range(users)]
    interactions = pd.DataFrame({"user_id": u[~held], "item_id": i[~held],
                                 "timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
                                 "user_idx": u[~held], "item_idx": i[~held]})
    return BenchmarkData("tiny", train, test_sets, list(range(ITEMS)), list(range(users)),
                         interactions)


@pytest.mark.parametrize("max_items", [MAX_ITEMS, None])
def test_every_benchmark_ease_variant_is_restricted_alike(max_items: int | None) -> None:
    data = _protocol_data()

    results = run_baselines(data, "tiny", protocol="random", max_items=max_items)

    # Restricted, no EASE variant ranks an item outside the popular ones among its top 5 (each
    # shopper has at least 7 popular items left unseen); unrestricted, they reach further.
    top5 = [results[name]["coverage@5"] * ITEMS for name in ("ease", "ease_lambda_100",
                                                            "ease_lambda_500")]
    if max_items is None:
        assert max(top5) > MAX_ITEMS
    else:
        assert max(top5) <= MAX_ITEMS


def test_the_benchmark_output_says_whether_ease_was_restricted() -> None:
    restricted = ease_restriction(ITEMS, MAX_ITEMS)
    assert restricted["restricted_to_top_items"] == MAX_ITEMS
    assert f"restricted to the {MAX_ITEMS} most popular of {ITEMS} items" in restricted["note"]
    full = ease_restriction(ITEMS, ITEMS)
    assert full["restricted_to_top_items"] is None and "every item" in full["note"]
