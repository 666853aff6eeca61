"""What a candidate's MLflow run keeps besides its metrics: the model, its report and its plots.

The model is logged as a pyfunc over the same bundle the endpoint loads, with its code and its
requirements pinned to the locked versions it was trained and tested with
(``contracts.pyfunc.log_pyfunc``), so a registered version loads and serves in a fresh
environment as it was evaluated. The evaluation report, the metric@k and
training plots and the explanation figures sit next to it, so a reviewer of the compare view sees
why the gate chose it without re-running anything.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from models.fit import Fitted
from models.train_config import TrainConfig
from pipelines.data.features import FeatureSet
from pipelines.evaluation.explain_check import explain_check, load_ground_truth
from pipelines.tracking import runs as tracking
from pipelines.tracking.plots import plot_importance, plot_metric_at_k, plot_training

EXPLAINED_USERS = 20  # shoppers the explain check samples per run


def log_explanations(recommender, data_dir: Path, users: int = EXPLAINED_USERS) -> dict[str, Any]:
    """Explain-check figures as ``explain.*`` metrics; global feature importance as JSON and a
    bar chart under ``explanations/``. Returns the figures."""
    sample = recommender.known_users[:users]
    figures = explain_check(recommender, sample, ground_truth=load_ground_truth(data_dir))
    importance = figures.pop("global_importance")
    tracking.log_metrics({f"explain.{k}": float(v) for k, v in figures.items()
                          if isinstance(v, int | float | bool)})
    mlflow.log_dict(importance, "explanations/global_feature_importance.json")
    with tempfile.TemporaryDirectory() as tmp:
        chart = plot_importance(importance, Path(tmp) / "global_feature_importance.png")
        mlflow.log_artifact(str(chart), "explanations")
    return figures


def log_model(
    run_id: str,
    recommender,
    features: FeatureSet,
    fitted: Fitted,
    config: TrainConfig,
    metrics: Mapping[str, float],
    baselines: Mapping[str, Mapping[str, float]],
) -> str:
    """Log the bundle as a pyfunc model with the evaluation report and plots; the model URI."""
    from contracts.bundle import save_bundle
    from contracts.pyfunc import log_pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle = save_bundle(root / "bundle", features.spec, config.to_dict(), features.table,
                             features.catalogue, recommender.histories, recommender.purchased,
                             fitted.retrieval, fitted.ranker, features.shoppers)
        report = {"model": dict(metrics), "baselines": dict(baselines),
                  "training_history": fitted.history}
        (root / "evaluation.json").write_text(json.dumps(report, indent=2, default=float))
        plots = root / "plots"
        plots.mkdir()
        results = {"tfrs": metrics} | dict(baselines)
        for metric in ("ndcg", "recall"):
            plot_metric_at_k(results, metric, plots / f"{metric}_at_k.png")
        plot_training(fitted.history, plots / "training_curves.png")
        mlflow.log_artifact(str(root / "evaluation.json"))
        mlflow.log_artifacts(str(plots), "plots")
        mlflow.log_artifact(str(bundle / "spec.json"), "vocabularies")
        mlflow.log_artifact(str(bundle / "catalogue.parquet"), "catalogue")
        example = pd.DataFrame({"user_id": recommender.known_users[:1], "k": [5]})
        info = log_pyfunc(bundle, input_example=example)
    return info.model_uri or f"runs:/{run_id}/model"
