"""Which model answered: name, version, run, training data and headline metrics of a model URI.

The endpoint reports this with every response and the BentoML store keeps it as labels, so a
served recommendation can be traced back to its MLflow run and the data it was trained on.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow.tracking import MlflowClient

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUN = re.compile(r"^runs:/(?P<run_id>[^/]+)/")
# Evaluation metrics a reader compares models by (the run also logs per-epoch losses etc.).
HEADLINE_SUFFIX = "_at_10"
# Run tag naming one shopper (a pseudonym) the model knows: the endpoint's smoke test asks for it,
# so the check exercises the model and its explanations, not the cold-start fallback.
PROBE_USER_TAG = "shoprec.probe_user"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str | None
    run_id: str | None
    uri: str  # pinned: a version number, never an alias that may move
    data_hash: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    probe_user: str | None = None  # a pseudonym the model knows (``PROBE_USER_TAG``)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def labels(self) -> dict[str, str]:
        """Flat string labels for the BentoML model store."""
        labels = {"mlflow_run_id": self.run_id, "model_name": self.name,
                  "model_version": self.version, "data_hash": self.data_hash,
                  "window_start": self.window_start, "window_end": self.window_end}
        labels |= {f"metric.{k}": f"{v:.6g}" for k, v in self.metrics.items()}
        return {k: str(v) for k, v in labels.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


def describe(uri: str) -> ModelInfo:
    """Resolve an MLflow model URI (alias, version or run) to a pinned URI and its lineage."""
    client = MlflowClient()
    name, version, run_id = _resolve(client, uri)
    pinned = f"models:/{name}/{version}" if version else uri
    if run_id is None:
        return ModelInfo(name=name, version=version, run_id=None, uri=pinned)
    run = client.get_run(run_id)
    params, tags = run.data.params, run.data.tags
    return ModelInfo(
        name=name, version=version, run_id=run_id, uri=pinned,
        data_hash=tags.get("data_hash"),
        window_start=params.get("data.window_start"),
        window_end=params.get("data.window_end"),
        metrics={k: float(v) for k, v in sorted(run.data.metrics.items())
                 if k.endswith(HEADLINE_SUFFIX) and "." not in k},
        probe_user=tags.get(PROBE_USER_TAG),
    )


def _resolve(client: MlflowClient, uri: str) -> tuple[str, str | None, str | None]:
    if match := _ALIAS.match(uri):
        found = client.get_model_version_by_alias(match["name"], match["alias"])
        return match["name"], str(found.version), found.run_id
    if match := _VERSION.match(uri):
        found = client.get_model_version(match["name"], match["version"])
        return match["name"], str(found.version), found.run_id
    if match := _RUN.match(uri):
        return "run", None, match["run_id"]
    return uri, None, None
