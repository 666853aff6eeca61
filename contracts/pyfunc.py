"""The MLflow pyfunc flavour of the two-stage model: ``mlflow.pyfunc.load_model`` recommends.

The pyfunc is for ``mlflow.pyfunc.load_model`` users. The endpoint never loads it (that would
unpickle ``python_model.pkl`` from the registry): it finds the bundle folder inside the downloaded
model with ``bundle_folder``, which reads only the ``MLmodel`` YAML, and loads the bundle's files.

Input rows carry pseudonymised ``user_id`` values (as in curated data; the pseudonymisation key is
a secret and never travels with a model) and an optional ``k``. Output: one row per
recommendation with ``user_id``, ``item_id``, ``score`` and ``rank``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import yaml
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

BUNDLE = "bundle"
DEFAULT_K = 10

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "user_id"), ColSpec("long", "k", required=False)]),
    outputs=Schema([ColSpec("string", "user_id"), ColSpec("string", "item_id"),
                    ColSpec("double", "score"), ColSpec("long", "rank")]),
)


def bundle_folder(model_dir: Path | str) -> Path:
    """The bundle folder of a downloaded MLflow model (or of a BentoML store copy of one): the
    path the ``MLmodel`` file names for the ``bundle`` artifact, which must stay inside
    ``model_dir``; ``artifacts/bundle`` when the file names none. Nothing is unpickled."""
    root = Path(model_dir).resolve()
    named = f"artifacts/{BUNDLE}"
    mlmodel = root / "MLmodel"
    if mlmodel.is_file():
        meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
        flavor = (meta.get("flavors") or {}).get("python_function") or {}
        artifact = (flavor.get("artifacts") or {}).get(BUNDLE) or {}
        named = str(artifact.get("path") or named)
    folder = (root / named).resolve()
    if root not in folder.parents:
        raise ValueError(f"the model's {BUNDLE} artifact path {named!r} leaves its folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"no {BUNDLE} folder in the model at {root}")
    return folder


def load_logged(uri: str, folder: Path | None = None, catalogue_now=None):
    """The two-stage model an MLflow model URI names (``models:/...``, ``runs:/...``), loaded
    from its bundle files; ``folder``: an already downloaded copy (a BentoML store model);
    ``catalogue_now``: the shop's catalogue now, whose items the model never saw it adds. The
    one way the endpoint, the gate and batch scoring load a model: nothing is unpickled."""
    from contracts.bundle import load_bundle

    if folder is not None:
        return load_bundle(bundle_folder(folder), catalogue_now=catalogue_now)
    with tempfile.TemporaryDirectory(prefix="shoprec-model-") as tmp:
        return load_bundle(bundle_folder(mlflow.artifacts.download_artifacts(uri, dst_path=tmp)),
                           catalogue_now=catalogue_now)


class TwoStagePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from contracts.bundle import load_bundle

        self.recommender = load_bundle(context.artifacts[BUNDLE])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from models.queries import Query

        users = model_input["user_id"].astype(str).tolist()
        ks = model_input["k"] if "k" in model_input else pd.Series([None] * len(users))
        queries = [Query(user, DEFAULT_K if k is None or pd.isna(k) else int(k))
                   for user, k in zip(users, ks, strict=True)]
        rows = [{"user_id": query.user, **vars(rec)}
                for query, ranked in zip(queries, self.recommender.recommend_many(queries),
                                         strict=True)
                for rec in self.recommender.recommendations(ranked)]
        return pd.DataFrame(rows, columns=["user_id", "item_id", "score", "rank"])
