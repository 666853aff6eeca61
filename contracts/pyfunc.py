"""The MLflow pyfunc flavour of the two-stage model: ``mlflow.pyfunc.load_model`` recommends.

The pyfunc is for ``mlflow.pyfunc.load_model`` users, in any environment: it is logged as MLflow
"models from code" (``pyfunc_code.py``, no pickle) carrying the modules it runs (``code/``:
``contracts`` and ``models``, only what it imports), and its ``requirements.txt`` pins the
third-party distributions those import at the versions trained and tested with (``uv.lock``'s).
The endpoint never runs that code: it finds the bundle folder inside the downloaded model with
``bundle_folder``, which reads only the ``MLmodel`` YAML, and loads the bundle's files.

Input rows carry pseudonymised ``user_id`` values (as in curated data; the pseudonymisation key is
a secret and never travels with a model) and an optional ``k``. Output: one row per
recommendation with ``user_id``, ``item_id``, ``score`` and ``rank``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from importlib.metadata import version as installed_version
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import yaml
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

BUNDLE = "bundle"
DEFAULT_K = 10
MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")  # what MLflow runs to load the model
# The project modules the logged model carries (its ``code/`` folder): this module, the bundle's
# reader and every model module; the fresh-environment test fails when one is missing.
CODE_FILES = {"contracts": ("__init__.py", "bundle.py", "pyfunc.py"), "models": ("*.py",)}
# Distributions that code imports itself (mlflow-skinny provides ``mlflow`` without the tracking
# server's dependencies); what they need in turn resolves from their own metadata.
MODEL_PACKAGES = ("mlflow-skinny", "tensorflow", "tf-keras", "tensorflow-recommenders", "numpy",
                  "pandas", "pyarrow", "scipy", "faiss-cpu", "pyyaml")

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


def pinned(names: Sequence[str]) -> list[str]:
    """``name==version`` for each distribution at the version installed here: ``make setup``
    syncs the environment to ``uv.lock``, so these are the locked versions the model was trained
    and tested with (no resolver run, nothing fetched)."""
    return [f"{name}=={installed_version(name)}" for name in names]


def log_pyfunc(bundle: Path, input_example: pd.DataFrame | None = None):
    """Log ``bundle`` as the run's ``model``: code, not a pickle, with the modules it imports
    and its pinned requirements, so it loads wherever those install. MLflow's ``ModelInfo``."""
    with tempfile.TemporaryDirectory(prefix="shoprec-model-code-") as tmp:
        return mlflow.pyfunc.log_model(
            name="model", python_model=str(MODEL_CODE), code_paths=_staged_code(Path(tmp)),
            artifacts={BUNDLE: str(bundle)}, signature=SIGNATURE, input_example=input_example,
            pip_requirements=pinned(MODEL_PACKAGES))


def _staged_code(folder: Path) -> list[str]:
    """``CODE_FILES`` copied into ``folder`` as packages (MLflow copies each path given into
    ``code/`` and puts that folder first on ``sys.path`` when it loads the model)."""
    root = Path(__file__).resolve().parents[1]
    for package, patterns in CODE_FILES.items():
        (folder / package).mkdir()
        for pattern in patterns:
            for source in (root / package).glob(pattern):
                shutil.copy2(source, folder / package / source.name)
    return [str(folder / package) for package in CODE_FILES]


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
    """The logged model: the bundle loaded once, recommendations per input row."""

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
