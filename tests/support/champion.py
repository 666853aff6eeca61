"""A tiny trained model made champion in a data dir's own MLflow store (seconds).

The tiny shop's customers get raw ids (``C0``..``C9``) pseudonymised with the settings' key, as
ingestion would, so the endpoint must hash raw ids the same way to recognise them. The run's
metrics are the model's own, evaluated on the tiny shop's validation window exactly as a
candidate is; the alias is set directly (these tests are about serving, not about the gate).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from contracts import registry
from contracts.bundle import USERS, save_bundle
from contracts.model_info import PROBE_USER_TAG
from contracts.pseudonyms import Pseudonymiser
from contracts.pyfunc import bundle_folder, log_pyfunc
from contracts.settings import Settings
from models.fit import fit_two_stage
from pipelines.data.features import build_features
from pipelines.evaluation.splits import K_VALUES, evaluate_on_split, validation_split
from pipelines.steps.candidate import model_topk, recommender_for
from pipelines.tracking import runs as tracking
from tests.support.tiny import TINY, tiny_shop

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
    """Train the tiny two-stage model, log it like training does, make it champion; the
    version."""
    events, items, users = shop(settings)
    features = build_features(events, items, users, history_length=TINY.history_length)
    config = replace(TINY, seed=seed)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, config)
    recommender = recommender_for(features, fitted, config)
    split = validation_split(features)
    metrics = evaluate_on_split(model_topk(recommender, split, max(K_VALUES)), split, features)
    registry.configure(settings)
    tags = {"data_hash": f"tiny-{seed}", PROBE_USER_TAG: recommender.known_users[0]}
    with tracking.start_run("serving-test", "tfrs", tags) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tracking.log_params_flat({"data": {"window_start": str(features.window[0]),
                                           "window_end": str(features.window[1])}})
        tracking.log_metrics(metrics)
        bundle = save_bundle(Path(tmp) / "bundle", features.spec, config.to_dict(),
                             features.table, items, recommender.histories, recommender.purchased,
                             fitted.retrieval, fitted.ranker)
        info = log_pyfunc(bundle)
    version = mlflow.register_model(info.model_uri or f"runs:/{run.info.run_id}/model",
                                    settings.model_name).version
    MlflowClient().set_registered_model_alias(settings.model_name, registry.CHAMPION, version)
    return str(version)


def register_copy(settings: Settings, version: str, broken: bool = False) -> str:
    """Register ``version``'s bundle again as a new version (seconds, no training); the new
    version, not aliased. ``broken``: the purchases of every shopper but the first (the one the
    endpoint warms up with) name items beyond the catalogue, so the copy loads and warms up like
    a good model and then fails on every other known shopper's request, as a model built against
    the wrong catalogue would."""
    registry.configure(settings)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(
            f"models:/{settings.model_name}/{version}", dst_path=tmp))
        bundle = bundle_folder(folder)
        if broken:
            with np.load(bundle / USERS, allow_pickle=False) as arrays:
                users = dict(arrays)
            users["purchased"][users["offsets"][1]:] = 10**6
            np.savez(bundle / USERS, **users)
        source = MlflowClient().get_model_version(settings.model_name, version)
        with tracking.start_run("serving-test", "tfrs", {"data_hash": "copy"}):
            tracking.log_metrics(MlflowClient().get_run(source.run_id).data.metrics)
            info = log_pyfunc(bundle)
    return str(mlflow.register_model(info.model_uri, settings.model_name).version)
