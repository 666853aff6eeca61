"""Train steps: curated data -> features -> baselines and candidate models, logged and gated.

Each step is one task of the pipeline DAG and ``train`` composes them for the CLI. Every model
run lands in the data set's MLflow experiment with its config, per-epoch and final metrics, data
lineage, artifacts and the model as a pyfunc; popularity and EASE are logged as runs of their own
on the same split, so the compare view shows them side by side. The gate then registers the best
model and promotes it only if it beats the champion and popularity.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from contracts import registry
from contracts.settings import Settings
from models import distribute
from models.baselines import EASE, Popularity
from models.fit import TrainConfig, fit_two_stage
from models.inputs import latest_histories
from pipelines import tracking
from pipelines.evaluate import evaluate_topk, plot_metric_at_k
from pipelines.features import (
    FeatureSet,
    build_features,
    features_path,
    load_features,
    load_positive_events,
    save_features,
)
from pipelines.promote import CandidateResult, evaluate_candidates, promote
from pipelines.register import GateDecision
from pipelines.zones import DataDir, write_json_atomic

log = logging.getLogger(__name__)
K_VALUES = (5, 10, 20)
BATCHES = "batches.json"  # the accepted batch manifests a feature set was built from


@dataclass
class TrainResult:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    train_seconds: float
    gate: GateDecision | None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "gate"}
        out["gate"] = self.gate.__dict__ if self.gate else None
        return out


@dataclass
class Split:
    """The validation problem in matrix form, shared by the model and the baselines."""

    train: sp.csr_matrix  # users x items (feature-spec vocabulary ids), binary
    users: list[str]  # row -> pseudonymised user id
    rows: np.ndarray  # rows with validation items
    test_sets: list[np.ndarray]  # per row in ``rows``: items first bought in the window


def validation_split(features: FeatureSet) -> Split:
    spec = features.spec
    users = list(spec.users.values)
    train = sp.csr_matrix(
        (np.ones(len(features.train), np.float32), (features.train.user, features.train.item)),
        shape=(spec.users.size, spec.items.size),
    )
    train.data[:] = 1.0
    valid = pd.DataFrame({"user": features.valid.user, "item": features.valid.item})
    valid = valid[(valid["user"] > 0) & (valid["item"] > 0)]
    rows, test_sets = [], []
    for user, group in valid.groupby("user"):
        seen = train[user].indices
        fresh = np.setdiff1d(group["item"].unique(), seen)
        if len(fresh):
            rows.append(int(user))
            test_sets.append(fresh)
    return Split(train, users, np.array(rows, dtype=np.int64), test_sets)


def _evaluate(topk: np.ndarray, split: Split, features: FeatureSet) -> dict[str, float]:
    categories = np.eye(features.spec.categories.size, dtype=np.float32)[features.table.category]
    return evaluate_topk(
        topk, split.test_sets, K_VALUES, n_items=features.spec.items.size,
        item_popularity=features.table.popularity, item_features=categories,
    )


def _baseline_topk(model, split: Split, k: int) -> np.ndarray:
    model.fit(split.train)
    scores = model.score(split.rows)
    scores[:, 0] = -np.inf
    seen = split.train[split.rows]
    scores[seen.nonzero()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def train(
    settings: Settings,
    data_dir: Path | None = None,
    config: TrainConfig | None = None,
    dataset: str = "synthetic",
    register: bool = True,
) -> TrainResult:
    """Train on the curated data of ``data_dir`` and log, evaluate and gate the result."""
    config = config or TrainConfig()
    update: dict[str, Any] = {"dataset": dataset}
    if data_dir is not None:
        update["data_dir"] = Path(data_dir).resolve()
    settings = settings.model_copy(update=update)
    strategy = distribute.strategy(settings.distribute)  # first: TF sets up collectives once
    chief = distribute.is_chief(strategy)
    features_uri = build_features_step(settings, config.history_length) if chief else ""
    distribute.barrier(strategy)  # other workers then read the feature set the chief built
    if not chief:  # another worker: it trains in step; the chief logs, saves and gates
        candidate = train_candidate(settings, build_features_step(settings, config.history_length),
                                    base=config)
        return TrainResult("", "", {}, {}, candidate.metrics["train_seconds"], None)
    baselines = train_baselines(settings, features_uri)
    candidate = train_candidate(settings, features_uri, baselines=baselines, base=config)
    gate = None
    if register:
        gate = promote(settings, evaluate_candidates(settings, [candidate], baselines))
    return TrainResult(candidate.run_id, candidate.model_uri, candidate.metrics, baselines,
                       candidate.metrics["train_seconds"], gate)


def candidate_config(settings: Settings, overrides: Mapping[str, Any] | None = None,
                     base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default: ``settings.train_config`` over the defaults) with one grid entry."""
    base = base or TrainConfig(**settings.train_config)
    return replace(base, **(overrides or {}))


def build_features_step(settings: Settings, history_length: int | None = None) -> str:
    """Build the feature set from the curated zone and return its URI.

    The folder is named after the accepted batches' data hash, so a retry or re-run on the same
    data reuses it, and every candidate of a run trains on exactly the same split.
    """
    history_length = history_length or candidate_config(settings).history_length
    data = DataDir(settings.data_dir)
    batches = [m for m in data.read_manifests() if m["status"] == "accepted"]
    if not batches:
        raise ValueError(f"no accepted batches under {data.root}: ingest some first")
    data_hash = tracking.data_hash([m["content_hash"] for m in batches])
    folder = data.features / f"{data_hash[:16]}-h{history_length}"
    if (folder / BATCHES).is_file():
        log.info("features for data %s already built: %s", data_hash[:16], folder)
        return folder.as_uri()
    events, items, users = load_positive_events(data.root)
    features = build_features(events, items, users, history_length=history_length)
    uri = save_features(features, folder)
    write_json_atomic(folder / BATCHES, batches)  # last: marks the feature set complete
    return uri


def _lineage(features_uri: str) -> tuple[list[dict[str, Any]], str]:
    batches = json.loads((features_path(features_uri) / BATCHES).read_text(encoding="utf-8"))
    return batches, tracking.data_hash([m["content_hash"] for m in batches])


def train_baselines(settings: Settings, features_uri: str) -> dict[str, dict[str, float]]:
    """Fit popularity and EASE on the feature set's split, each logged as its own MLflow run."""
    registry.configure(settings)
    features = load_features(features_uri)
    split = validation_split(features)
    batches, data_hash = _lineage(features_uri)
    baselines: dict[str, dict[str, float]] = {}
    lambda_ = 100.0
    for family, model in (("popularity", Popularity()), ("ease", EASE(lambda_))):
        with tracking.start_run(settings.dataset, family, {"model_family": family,
                                                           "data_hash": data_hash}):
            started = time.perf_counter()
            topk = _baseline_topk(model, split, max(K_VALUES))
            seconds = time.perf_counter() - started
            baselines[family] = _evaluate(topk, split, features) | {"train_seconds": seconds}
            tracking.log_params_flat({"model_family": family} |
                                     ({"lambda": lambda_} if family == "ease" else {}))
            tracking.log_lineage(batches, f"{settings.dataset}-curated", data_hash)
            tracking.log_metrics(baselines[family])
    return baselines


def train_candidate(
    settings: Settings,
    features_uri: str,
    overrides: Mapping[str, Any] | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    base: TrainConfig | None = None,
) -> CandidateResult:
    """Fit, evaluate and log one two-stage candidate as its own MLflow run.

    ``overrides`` is one entry of ``settings.train_grid``; the history length is the feature
    set's, since the features were built for it. ``baselines`` (from ``train_baselines``) go into
    the run's evaluation report and plots.

    Under multi-worker training (``settings.distribute``, ``TF_CONFIG``) every worker calls this;
    only the chief logs, evaluates and saves, the others train in step and return no run.
    """
    config = candidate_config(settings, overrides, base)
    strategy = distribute.strategy(settings.distribute)
    features = load_features(features_uri)
    if config.history_length != features.spec.history_length:
        raise ValueError(
            f"history_length {config.history_length} differs from the feature set's "
            f"{features.spec.history_length}: set it in train_config, not per candidate"
        )
    if not distribute.is_chief(strategy):
        started = time.perf_counter()
        fit_two_stage(features.spec, features.table, features.train, features.valid, config,
                      strategy=strategy)
        return CandidateResult("", "", {"train_seconds": time.perf_counter() - started},
                               dict(overrides or {}))
    registry.configure(settings)
    split = validation_split(features)
    batches, data_hash = _lineage(features_uri)
    tags = {"model_family": "tfrs", "data_hash": data_hash,
            "candidate": json.dumps(dict(overrides or {}), sort_keys=True)}
    with tracking.start_run(settings.dataset, "tfrs-two-stage", tags) as run:
        tracking.log_params_flat({"model": config.to_dict(), "data": {
            "train_interactions": len(features.train), "valid_interactions": len(features.valid),
            "users": features.spec.users.size, "items": features.spec.items.size,
            "split_time": str(features.split_time), "window_start": str(features.window[0]),
            "window_end": str(features.window[1]), "batches": len(batches)}})
        tracking.log_lineage(batches, f"{settings.dataset}-curated", data_hash)
        started = time.perf_counter()
        fitted = fit_two_stage(
            features.spec, features.table, features.train, features.valid, config,
            on_epoch=lambda stage, epoch, m: tracking.log_metrics(
                {f"{stage}.{name}": value for name, value in m.items()}, step=epoch),
            strategy=strategy,
        )
        seconds = time.perf_counter() - started
        recommender, bundle_args = _recommender(features, fitted, config)
        metrics = _evaluate(_model_topk(recommender, split, max(K_VALUES)), split, features)
        metrics["train_seconds"] = seconds
        ranking = [e["val_auc"] for e in fitted.history["ranking"] if "val_auc" in e]
        if ranking:  # the best epoch's validation AUC (pairs of positives and sampled negatives)
            metrics["ranker_auc"] = max(ranking)
        tracking.log_metrics(metrics)
        _log_explanations(recommender, DataDir(settings.data_dir))
        model_uri = _log_artifacts(run.info.run_id, features, fitted, config, metrics,
                                   dict(baselines or {}), bundle_args)
    return CandidateResult(run.info.run_id, model_uri, metrics, dict(overrides or {}))


def _log_explanations(recommender, data: DataDir, users: int = 20) -> dict[str, Any]:
    """Explain-check figures as metrics; global feature importance as JSON and a bar plot."""
    import mlflow

    from pipelines.explain_check import explain_check

    truth_file = data.reference / "ground_truth.json"
    truth = json.loads(truth_file.read_text())["users"] if truth_file.is_file() else None
    sample = sorted(recommender.histories)[:users]
    figures = explain_check(recommender, sample, ground_truth=truth)
    importance = figures.pop("global_importance")
    tracking.log_metrics({f"explain.{k}": float(v) for k, v in figures.items()
                          if isinstance(v, int | float | bool)})
    mlflow.log_dict(importance, "explanations/global_feature_importance.json")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(importance, key=importance.get)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.barh(names, [importance[n] for n in names])
    ax.set_xlabel("mean |integrated-gradients attribution|")
    ax.set_title("Global feature importance (ranker)")
    fig.tight_layout()
    mlflow.log_figure(fig, "explanations/global_feature_importance.png")
    plt.close(fig)
    return figures


def _recommender(features: FeatureSet, fitted, config: TrainConfig):
    from models.two_stage import TwoStageRecommender

    spec = features.spec
    histories = latest_histories(spec, features.train_events)
    purchased = {
        str(user): np.unique(spec.items.lookup(group["item_id"]))
        for user, group in features.train_events.groupby("user_id")
    }
    args = (spec, features.table, fitted.retrieval, fitted.ranker, features.catalogue,
            histories, purchased)
    return TwoStageRecommender(*args, retrieve_n=config.retrieve_n), args


def _model_topk(recommender, split: Split, k: int) -> np.ndarray:
    users = [split.users[r] for r in split.rows]
    rows = [recommender.features_for(u) for u in users]
    features = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
    exclude = [split.train[r].indices for r in split.rows]
    topk, _ = recommender.top_k(features, exclude, k)
    return topk


def _log_artifacts(run_id, features, fitted, config, metrics, baselines, bundle_args) -> str:
    import mlflow

    from contracts.bundle import save_bundle
    from contracts.pyfunc import BUNDLE, SIGNATURE, TwoStagePyfunc

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec, table, retrieval, ranker, catalogue, histories, purchased = bundle_args
        bundle = save_bundle(root / "bundle", spec, config.to_dict(), table, catalogue,
                             histories, purchased, retrieval, ranker)
        report = {"model": metrics, "baselines": baselines,
                  "training_history": fitted.history}
        (root / "evaluation.json").write_text(json.dumps(report, indent=2, default=float))
        plots = root / "plots"
        plots.mkdir()
        results = {"tfrs": metrics} | baselines
        for metric in ("ndcg", "recall"):
            plot_metric_at_k(results, metric, plots / f"{metric}_at_k.png")
        _plot_training(fitted.history, plots / "training_curves.png")
        mlflow.log_artifact(str(root / "evaluation.json"))
        mlflow.log_artifacts(str(plots), "plots")
        mlflow.log_artifact(str(bundle / "spec.json"), "vocabularies")
        mlflow.log_artifact(str(bundle / "catalogue.parquet"), "catalogue")
        example = pd.DataFrame({"user_id": [next(iter(histories))], "k": [5]})
        info = mlflow.pyfunc.log_model(
            name="model", python_model=TwoStagePyfunc(), artifacts={BUNDLE: str(bundle)},
            signature=SIGNATURE, input_example=example,
            pip_requirements=["tensorflow==2.21.0", "tf-keras==2.21.0",
                              "tensorflow-recommenders==0.7.7", "pandas", "numpy"],
        )
    return f"runs:/{run_id}/model" if not info.model_uri else info.model_uri


def _plot_training(history: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(history), figsize=(5 * len(history), 3.5))
    for ax, (stage, epochs) in zip(np.atleast_1d(axes), history.items(), strict=True):
        for key in ("loss", "val_loss"):
            ax.plot([e.get(key, np.nan) for e in epochs], marker="o", label=key)
        ax.set_title(f"{stage} training")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
