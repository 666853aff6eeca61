"""A tiny trained model registered as champion in a data dir's own MLflow store (seconds).

The tiny shop's customers get raw ids (``C0``..``C9``) pseudonymised with the settings' key, as
ingestion would, so the endpoint must hash raw ids the same way to recognise them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np

from contracts import registry
from contracts.bundle import save_bundle
from contracts.pseudonyms import Pseudonymiser
from contracts.pyfunc import BUNDLE, SIGNATURE, TwoStagePyfunc
from contracts.settings import Settings
from models.fit import fit_two_stage
from models.inputs import latest_histories
from pipelines import tracking
from pipelines.features import build_features
from pipelines.register import register_and_gate
from tests.model.tiny import TINY, tiny_shop

RAW_USERS = [f"C{i}" for i in range(10)]


def shop(settings: Settings):
    """The tiny shop with pseudonymised customer ids, and the raw id of each pseudonym."""
    events, items, users = tiny_shop()
    pseudonymiser = Pseudonymiser(settings.pseudonym_key.get_secret_value())
    raw_of = {u: RAW_USERS[i] for i, u in enumerate(sorted(events["user_id"].unique()))}
    to_pseudonym = {u: pseudonymiser.one(raw) for u, raw in raw_of.items()}
    events = events.assign(user_id=events["user_id"].map(to_pseudonym))
    users = users.assign(user_id=users["user_id"].map(to_pseudonym))
    return events, items, users


def register_champion(settings: Settings, seed: int = 0) -> str:
    """Train the tiny two-stage model, log it like training does, gate it; the version."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    events, items, users = shop(settings)
    features = build_features(events, items, users, history_length=TINY.history_length)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, TINY)
    spec = features.spec
    train_events = features.train_events
    purchased = {str(u): np.unique(spec.items.lookup(g["item_id"]))
                 for u, g in train_events.groupby("user_id")}
    registry.configure(settings)
    with tracking.start_run("serving-test", "tfrs", {"data_hash": f"tiny-{seed}"}) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tracking.log_params_flat({"data": {"window_start": str(features.window[0]),
                                           "window_end": str(features.window[1])}})
        metrics = {"ndcg@10": 0.5 + seed / 100, "recall@10": 0.6}
        tracking.log_metrics(metrics)
        bundle = save_bundle(Path(tmp) / "bundle", spec, TINY.to_dict(), features.table, items,
                             latest_histories(spec, train_events), purchased, fitted.retrieval,
                             fitted.ranker)
        info = mlflow.pyfunc.log_model(name="model", python_model=TwoStagePyfunc(),
                                       artifacts={BUNDLE: str(bundle)}, signature=SIGNATURE)
    decision = register_and_gate(info.model_uri or f"runs:/{run.info.run_id}/model", metrics,
                                 {"ndcg@10": 0.0}, name=settings.model_name)
    assert decision.promoted, decision.reason
    return decision.version
