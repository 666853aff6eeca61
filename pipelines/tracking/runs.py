"""MLflow plumbing shared by training, the baselines and the registry gate.

Every run the platform logs goes through here, so that runs of the same data set land in the same
experiment, carry the same tags (code version, data set, data hash, model family) and record the
batches they were trained on. That is what lets the gate and a reader of the UI compare like with
like, and trace any model back to its code and data.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

from contracts import registry
from contracts.settings import PROJECT_ROOT

EXPERIMENT_PREFIX = "shoprec-"
DATASET_TAG = "shoprec.dataset"
# MLflow rejects params batches above 100 entries and dataset digests above 36 characters.
_PARAMS_PER_BATCH = 100
_DIGEST_LENGTH = 36
# Characters MLflow accepts in metric and param names (POSIX); "@" is not among them.
_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def experiment_for(dataset: str) -> str:
    """Id of the data set's experiment, created (or restored if deleted) on first use.

    One experiment per data set keeps metrics comparable: an ndcg@10 on MovieLens and one on
    Online Retail must never sit in the same leaderboard.
    """
    name = f"{EXPERIMENT_PREFIX}{dataset}"
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = registry.local_artifact_root()
        try:
            return client.create_experiment(
                name, artifact_location=root and f"{root}/{name}",
                tags={DATASET_TAG: dataset},
            )
        except MlflowException as err:  # another process created it meanwhile
            if err.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def git_commit() -> str:
    """Commit of the working tree, or "unknown": a missing git must never stop a training run."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else "unknown"


@contextmanager
def start_run(
    dataset: str, run_name: str, tags: Mapping[str, Any] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Start a run in the data set's experiment with the standard tags set from the start.

    Tags are set at creation rather than at the end so that a run that crashes still says which
    code and data it was running on.
    """
    all_tags = {"git_commit": git_commit(), DATASET_TAG: dataset}
    all_tags |= {key: str(value) for key, value in (tags or {}).items()}
    with mlflow.start_run(
        experiment_id=experiment_for(dataset), run_name=run_name, tags=all_tags
    ) as run:
        yield run


def mlflow_key(name: str) -> str:
    """The name a metric or param is stored under: MLflow rejects ``@``, so ``ndcg@10`` is
    stored as ``ndcg_at_10``, and any other character it rejects becomes ``_``."""
    return _INVALID_KEY_CHARS.sub("_", name.replace("@", "_at_"))[:MAX_ENTITY_KEY_LENGTH]


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> dict[str, float]:
    """Log metrics under their MLflow names (see ``mlflow_key``) and return what was logged."""
    logged = {mlflow_key(key): float(value) for key, value in metrics.items()}
    mlflow.log_metrics(logged, step=step)
    return logged


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping to dotted keys with string values, cut to what MLflow accepts."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{dotted}.")
        else:
            flat[mlflow_key(dotted)] = str(value)[:MAX_PARAM_VAL_LENGTH]
    return flat


def log_params_flat(config: Mapping[str, Any]) -> dict[str, str]:
    """Log a nested config as dotted params (``model.embedding_dim``) and return what was logged.

    Runs are compared by params in the UI and in ``search_runs``; flat dotted keys keep each
    setting filterable instead of hiding it in a JSON blob.
    """
    flat = flatten(config)
    items = list(flat.items())
    for start in range(0, len(items), _PARAMS_PER_BATCH):
        mlflow.log_params(dict(items[start : start + _PARAMS_PER_BATCH]))
    return flat


def data_hash(content_hashes: list[str]) -> str:
    """SHA-256 over the sorted batch content hashes: the same batches give the same hash whatever
    order they were listed or ingested in, so two runs on identical data are recognisable."""
    digest = hashlib.sha256()
    for content_hash in sorted(set(content_hashes)):
        digest.update(content_hash.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


_data_hash = data_hash  # ``log_lineage`` has a parameter of the same name


def lineage_frame(batches: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per batch manifest, sorted by content hash so the logged table is stable."""
    rows = [
        {
            "batch": str(manifest.get("batch", "")),
            "content_hash": str(manifest.get("content_hash", "")),
            "batch_date": str(manifest.get("batch_date") or ""),
            "status": str(manifest.get("status", "")),
            "validation_ids": ",".join(str(v) for v in manifest.get("validation_ids") or []),
        }
        for manifest in batches
    ]
    columns = ["batch", "content_hash", "batch_date", "status", "validation_ids"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("content_hash", kind="stable").reset_index(drop=True)


def log_lineage(
    batches: list[Mapping[str, Any]],
    name: str,
    data_hash: str | None = None,
    *,
    source: str | None = None,
) -> str:
    """Record the batch manifests a run trained on as an MLflow dataset input; return the hash.

    The hash is recomputed from the manifests' content hashes; when the caller passes the hash it
    already tagged the run with, a mismatch raises, because a run whose tag and lineage disagree
    cannot be trusted for reproduction. The dataset digest is the hash's first 36 characters
    (MLflow's limit); the full hash goes in the input's tags.
    """
    hashes = [str(m.get("content_hash") or "") for m in batches]
    if not batches or not all(hashes):
        raise ValueError("lineage needs at least one batch manifest, each with a content_hash")
    computed = _data_hash(hashes)
    if data_hash is not None and data_hash != computed:
        raise ValueError(
            f"data hash {data_hash} does not match the batches' content hashes ({computed})"
        )
    dataset = mlflow.data.from_pandas(
        lineage_frame(batches), source=source, name=name, digest=computed[:_DIGEST_LENGTH]
    )
    mlflow.log_input(dataset, context="training", tags={"data_hash": computed})
    return computed
