"""The baselines step on a small shop: one MLflow run per baseline, EASE's λ chosen on an inner
split of the training window (or an explicit override)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from contracts.settings import Settings
from pipelines.data.features import BATCHES, build_features, save_features
from pipelines.evaluation.splits import K_VALUES
from pipelines.steps.baselines import train_baselines
from pipelines.tracking.runs import data_hash

ITEMS = 30  # the metrics need at least max(K_VALUES) items to rank


def small_shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Twelve shoppers buying from a 30-item catalogue, each mostly from their own third."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame({"item_id": [f"I{i}" for i in range(ITEMS)],
                          "title": [f"Item {i}" for i in range(ITEMS)],
                          "category": [f"c{i % 3}" for i in range(ITEMS)],
                          "brand": None, "price": 5.0})
    users = [f"u{u:02d}" for u in range(12)]
    n = 400
    user = rng.integers(0, len(users), n)
    item = np.where(rng.random(n) < 0.8, user % 3 + 3 * rng.integers(0, ITEMS // 3, n),
                    rng.integers(0, ITEMS, n))
    events = pd.DataFrame({"event_id": [f"E{i}" for i in range(n)],
                           "user_id": [users[u] for u in user],
                           "item_id": [f"I{i}" for i in item],
                           "timestamp": pd.date_range("2026-01-01", periods=n, freq="h",
                                                      tz="UTC")})
    return events, items, pd.DataFrame({"user_id": users, "country": "UK"})


def test_each_baseline_is_a_run_with_its_params_lineage_and_metrics(local_store: Settings,
                                                                     tmp_path) -> None:
    features = build_features(*small_shop(), history_length=4)
    uri = save_features(features, tmp_path / "features")
    (tmp_path / "features" / BATCHES).write_text(json.dumps(
        [{"batch": "b1", "content_hash": "h1", "status": "accepted"}]))
    settings = local_store.with_values(ease_lambda=7.5, ease_lambda_grid=[],
                                       dataset="baselines-test")

    baselines = train_baselines(settings, uri)

    assert set(baselines) == {"popularity", "ease"}
    for metrics in baselines.values():
        assert {f"ndcg@{k}" for k in K_VALUES} <= metrics.keys()
        assert metrics["train_seconds"] >= 0
    client = MlflowClient()
    experiment = client.get_experiment_by_name("shoprec-baselines-test")
    runs = {r.data.tags["model_family"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"popularity", "ease"}
    assert runs["ease"].data.params["lambda"] == "7.5"
    assert "lambda" not in runs["popularity"].data.params
    for family, run in runs.items():
        assert run.data.tags["data_hash"] == data_hash(["h1"])
        assert run.data.metrics["ndcg_at_10"] == baselines[family]["ndcg@10"]
        assert run.inputs.dataset_inputs, "lineage logged"


def test_ease_lambda_is_chosen_on_the_training_window_and_logged(local_store: Settings,
                                                                 tmp_path) -> None:
    features = build_features(*small_shop(), history_length=4)
    uri = save_features(features, tmp_path / "features")
    (tmp_path / "features" / BATCHES).write_text(json.dumps(
        [{"batch": "b1", "content_hash": "h1", "status": "accepted"}]))
    grid = [1.0, 10.0, 100.0]
    settings = local_store.with_values(ease_lambda_grid=grid, dataset="baselines-choose")

    train_baselines(settings, uri)

    client = MlflowClient()
    experiment = client.get_experiment_by_name("shoprec-baselines-choose")
    [run] = [r for r in client.search_runs([experiment.experiment_id])
             if r.data.tags["model_family"] == "ease"]
    params = run.data.params
    assert float(params["lambda"]) in grid
    assert params["lambda_grid"] == "1,10,100"
    assert params["lambda_source"] == "inner time split"
    scores = {lam: float(params[f"inner_ndcg_at_10.lambda_{lam:g}"]) for lam in grid}
    assert scores[float(params["lambda"])] == max(scores.values())
