"""Where models live and which one serves: the MLflow store, its aliases and rollout tags.

Training writes to the store and moves ``champion`` (``pipelines.tracking.register``); serving and
batch scoring read it. Both point MLflow at the configured store through ``configure`` and find the
served model through ``champion_uri``, so the two sides cannot disagree on either.

A rollout keeps its state here too, so every endpoint replica (and a restarted one) agrees on
it: ``stable`` names the version that serves all traffic, and while ``champion`` differs from it
the champion is on trial, in the stage its ``rollout_stage`` tag says (shadow unless canary).
Only rollouts move ``stable`` (``mark_stable``); a failed trial moves ``champion`` back to it
(``roll_back``), which the endpoint does by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from contracts.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
STABLE = "stable"
STAGE_TAG, ROLLBACK_TAG = "rollout_stage", "rollback_reason"
# When the champion entered its current stage (UTC, ISO 8601): where its read-out starts, for a
# restarted endpoint and for the read-out from the logs alike.
SINCE_TAG = "rollout_stage_since"
SHADOW, CANARY, FULL, ROLLED_BACK = "shadow", "canary", "full", "rolled_back"
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


def store_missing(uri: str) -> str | None:
    """The file of a local SQLite store that does not exist yet, else None: a read-only command
    says there is nothing to read rather than let MLflow create an empty store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix):].split("?", 1)[0]
    if not path or path == ":memory:" or Path(path).expanduser().is_file():
        return None
    return path


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


def champion(client: MlflowClient, name: str = DEFAULT_MODEL_NAME) -> ModelVersion | None:
    """The registered model's champion version, or None: the one lookup of who serves."""
    if CHAMPION not in aliases(client, name):
        return None
    return client.get_model_version_by_alias(name, CHAMPION)


def champion_uri(name: str = DEFAULT_MODEL_NAME) -> str | None:
    """``models:/<name>@champion`` when a champion exists, for serving and batch scoring."""
    return f"models:/{name}@{CHAMPION}" if champion(MlflowClient(), name) else None


@dataclass(frozen=True)
class RolloutPlan:
    """The registry's word on what serves: ``stage`` is None unless a champion is on trial."""

    champion: str | None
    stable: str | None
    stage: str | None = None
    since: str | None = None  # when the stage began (``SINCE_TAG``), if tagged

    @property
    def since_time(self) -> datetime | None:
        """``since`` as an aware time; None when absent or unreadable (then: from now)."""
        try:
            moment = datetime.fromisoformat(self.since) if self.since else None
        except ValueError:
            return None
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def rollout_plan(name: str = DEFAULT_MODEL_NAME) -> RolloutPlan:
    """Champion and stable versions; a champion that differs from a stable one is on trial,
    in shadow until its ``rollout_stage`` tag says canary. Without ``stable`` nothing is on
    trial: the champion serves alone, as before any rollout."""
    client = MlflowClient()
    found = aliases(client, name)
    champion, stable = (str(found[a]) if a in found else None for a in (CHAMPION, STABLE))
    if champion is None or stable is None or champion == stable:
        return RolloutPlan(champion, stable)
    tags = client.get_model_version(name, champion).tags
    return RolloutPlan(champion, stable, CANARY if tags.get(STAGE_TAG) == CANARY else SHADOW,
                       tags.get(SINCE_TAG))


def serving_uri(name: str = DEFAULT_MODEL_NAME) -> str | None:
    """The model every shopper gets: the stable version while a champion is on trial, else
    the champion; None without a champion."""
    plan = rollout_plan(name)
    version = plan.stable if plan.stage is not None else plan.champion
    return f"models:/{name}/{version}" if version is not None else None


def set_stage(name: str, version: str, stage: str) -> None:
    """Put ``version`` in ``stage``; the stage's start is tagged when it changes, so running a
    stage again (to extend it) keeps its read-out."""
    client = MlflowClient()
    if client.get_model_version(name, version).tags.get(STAGE_TAG) != stage:
        client.set_model_version_tag(name, version, SINCE_TAG,
                                     datetime.now(UTC).isoformat(timespec="microseconds"))
    client.set_model_version_tag(name, version, STAGE_TAG, stage)


def mark_stable(name: str, version: str) -> None:
    """``version`` serves all traffic from now on: the end of a rollout (or the first one)."""
    client = MlflowClient()
    client.set_model_version_tag(name, version, STAGE_TAG, FULL)
    client.set_registered_model_alias(name, STABLE, version)


def roll_back(name: str, version: str, stable: str, reason: str) -> None:
    """End ``version``'s trial: ``champion`` back on ``stable`` (unless a newer champion
    already replaced it), the reason on the version."""
    client = MlflowClient()
    client.set_model_version_tag(name, version, STAGE_TAG, ROLLED_BACK)
    client.set_model_version_tag(name, version, ROLLBACK_TAG, reason)
    if str(aliases(client, name).get(CHAMPION)) == version:
        client.set_registered_model_alias(name, CHAMPION, stable)
