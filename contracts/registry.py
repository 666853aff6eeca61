"""Where models live and which one serves: the MLflow store and the ``champion`` alias.

Training writes to the store and moves the alias (``pipelines.register``); serving and batch
scoring only read it. Both point MLflow at the configured store through ``configure`` and find
the served model through ``champion_uri``, so the two sides cannot disagree on either.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from contracts.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_MODEL_NAME = "shoprec"
NO_CHAMPION = "no champion model yet"

_local_artifact_root: str | None = None


def configure(settings: Settings) -> str:
    """Point tracking and registry at the configured store and return its URI.

    The registry follows the tracking store so a model version always lives next to the run that
    produced it; a local SQLite store gets its folder created because SQLite will not.
    """
    global _local_artifact_root
    uri = settings.mlflow_tracking_uri
    _ensure_sqlite_folder(uri)
    # A local store would otherwise put artifacts in ./mlruns of whatever the working directory
    # is; they belong in the data directory. Servers keep their own artifact root.
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    _local_artifact_root = (settings.data_dir / "mlartifacts").as_uri() if local else None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def local_artifact_root() -> str | None:
    """Artifact root for new experiments of a local store (``None`` for a tracking server)."""
    return _local_artifact_root


def _ensure_sqlite_folder(uri: str) -> None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return
    path = uri[len(prefix):].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of a registered model; empty when the model is not registered yet."""
    try:
        return dict(client.get_registered_model(name).aliases)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return {}
        raise


def champion_uri(name: str = DEFAULT_MODEL_NAME) -> str | None:
    """``models:/<name>@champion`` when a champion exists, for serving and batch scoring."""
    if CHAMPION not in aliases(MlflowClient(), name):
        return None
    return f"models:/{name}@{CHAMPION}"
