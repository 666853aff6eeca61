"""A tiny trained model made champion in a data dir's own MLflow store (seconds).

The tiny shop's customers get raw ids (``C0``..``C9``) pseudonymised with the settings' key, as
ingestion would, so the endpoint must hash raw ids the same way to recognise them. The run's
metrics are the model's own, evaluated on the tiny shop's validation window as training
evaluates; the alias is set directly (these tests are about serving, not about the gate).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from contracts import registry
from contracts.bundle import save_bundle
from contracts.model_info import PROBE_USER_TAG
from contracts.pseudonyms import Pseudonymiser
from contracts.pyfunc import BUNDLE, SIGNATURE, TwoStagePyfunc
from contracts.settings import Settings
from models.fit import fit_two_stage
from models.inputs import latest_histories
from models.two_stage import Query, TwoStageRecommender
from pipelines import tracking
from pipelines.evaluate import evaluate_topk
from pipelines.features import FeatureSet, build_features
from tests.model.tiny import TINY, tiny_shop

RAW_USERS = [f"C{i}" for i in range(10)]
K_VALUES = (5, 10)


def shop(settings: Settings):
    """The tiny shop with pseudonymised customer ids, and the raw id of each pseudonym."""
    events, items, users = tiny_shop()
    pseudonymiser = Pseudonymiser(settings.pseudonym_key.get_secret_value())
    raw_of = {u: RAW_USERS[i] for i, u in enumerate(sorted(events["user_id"].unique()))}
    to_pseudonym = {u: pseudonymiser.one(raw) for u, raw in raw_of.items()}
    events = events.assign(user_id=events["user_id"].map(to_pseudonym))
    users = users.assign(user_id=users["user_id"].map(to_pseudonym))
    return events, items, users


def evaluate(recommender: TwoStageRecommender, features: FeatureSet) -> dict[str, float]:
    """NDCG/recall@k of the recommender on the validation window: items each shopper first
    bought after the split, with everything bought before excluded."""
    spec = features.spec
    bought_before = {u: set(recommender.purchased.get(u, ())) for u in recommender.known_users}
    truth: dict[str, set[int]] = {}
    for user, item in zip(features.valid.user_key, features.valid.item, strict=True):
        if user in bought_before and item and item not in bought_before[user]:
            truth.setdefault(str(user), set()).add(int(item))
    users = sorted(truth)
    ranked = recommender.recommend_many([Query(u, max(K_VALUES)) for u in users])
    topk = np.zeros((len(users), max(K_VALUES)), np.int64)  # 0: the unknown item, never a hit
    for row, answer in enumerate(ranked):
        topk[row, : len(answer.items)] = answer.items
    return evaluate_topk(topk, [np.array(sorted(truth[u])) for u in users], K_VALUES,
                         n_items=spec.items.size, item_popularity=features.table.popularity)


def register_champion(settings: Settings, seed: int = 0) -> str:
    """Train the tiny two-stage model, log it like training does, make it champion; the
    version."""
    events, items, users = shop(settings)
    features = build_features(events, items, users, history_length=TINY.history_length)
    config = replace(TINY, seed=seed)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, config)
    spec, train_events = features.spec, features.train_events
    purchased = {str(u): np.unique(spec.items.lookup(g["item_id"]))
                 for u, g in train_events.groupby("user_id")}
    histories = latest_histories(spec, train_events)
    recommender = TwoStageRecommender(spec, features.table, fitted.retrieval, fitted.ranker,
                                      items, histories, purchased, retrieve_n=config.retrieve_n)
    metrics = evaluate(recommender, features)
    registry.configure(settings)
    tags = {"data_hash": f"tiny-{seed}", PROBE_USER_TAG: recommender.known_users[0]}
    with tracking.start_run("serving-test", "tfrs", tags) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tracking.log_params_flat({"data": {"window_start": str(features.window[0]),
                                           "window_end": str(features.window[1])}})
        tracking.log_metrics(metrics)
        bundle = save_bundle(Path(tmp) / "bundle", spec, config.to_dict(), features.table, items,
                             histories, purchased, fitted.retrieval, fitted.ranker)
        info = mlflow.pyfunc.log_model(name="model", python_model=TwoStagePyfunc(),
                                       artifacts={BUNDLE: str(bundle)}, signature=SIGNATURE)
    version = mlflow.register_model(info.model_uri or f"runs:/{run.info.run_id}/model",
                                    settings.model_name).version
    MlflowClient().set_registered_model_alias(settings.model_name, registry.CHAMPION, version)
    return str(version)
