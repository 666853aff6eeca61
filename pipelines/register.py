"""The registry gate: every finished model is registered, only a better one is served.

Serving loads ``models:/shoprec@champion``; this module is the only place that moves that alias.
A new version becomes champion only if it beats both the current champion and the popularity
baseline on the gate metric by more than a margin; otherwise it is kept as ``challenger`` with the
reason written on the version, so that a rejected model is explained rather than silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from contracts.registry import CHALLENGER, CHAMPION, DEFAULT_MODEL_NAME, aliases
from pipelines.tracking import mlflow_key


@dataclass
class GateDecision:
    """What the gate did with one model version, and why (also written as version tags)."""

    promoted: bool
    version: str
    alias: str
    reason: str
    metric: str
    candidate: float
    champion: float | None
    baseline: float | None
    champion_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _beats(candidate: float, other: float | None, margin: float) -> bool:
    """Absolute improvement strictly above the margin; NaN never beats anything."""
    if other is None:
        return not math.isnan(candidate)
    return candidate - other > margin


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    if CHAMPION not in aliases(client, name):
        return None
    return client.get_model_version_by_alias(name, CHAMPION)


def version_metric(client: MlflowClient, version: ModelVersion, metric: str) -> float | None:
    """The metric as recorded for a version: its source run's metrics, else its logged model's.

    Reading it back from the tracking store (instead of trusting a tag) means the champion is
    judged on the value its own training run logged, under its MLflow name (``ndcg_at_10``).
    """
    if version.run_id:
        value = metric_value(client.get_run(version.run_id).data.metrics, metric)
        if value is not None:
            return value
    model_id = getattr(version, "model_id", None)
    if model_id:
        logged = {m.key: m.value for m in client.get_logged_model(model_id).metrics or []}
        return metric_value(logged, metric)
    return None


def metric_value(metrics: Mapping[str, float], metric: str) -> float | None:
    """A metric by its display name (``ndcg@10``) or its MLflow name (``ndcg_at_10``)."""
    for key in (metric, mlflow_key(metric)):
        if key in metrics:
            return float(metrics[key])
    return None


def _decide(
    metric: str,
    candidate: float,
    champion: float | None,
    champion_version: str | None,
    baseline: float,
    margin: float,
) -> tuple[bool, str]:
    value, by = f"{metric} {_fmt(candidate)}", f"by margin {_fmt(margin)}"
    if champion_version is not None and champion is None:
        return False, (
            f"{value} cannot be compared: champion v{champion_version} has no recorded {metric}; "
            "move the alias by hand if this version should serve"
        )
    if champion_version is not None and not _beats(candidate, champion, margin):
        return False, (
            f"{value} does not beat champion v{champion_version} ({_fmt(champion)}) {by}"
        )
    against = (
        f"champion v{champion_version} ({_fmt(champion)})"
        if champion_version is not None
        else "no champion yet"
    )
    if not _beats(candidate, baseline, margin):
        return False, (
            f"{value} beats {against} but does not beat the popularity baseline "
            f"({_fmt(baseline)}) {by}"
        )
    if champion_version is None:
        return True, (
            f"{value} beats the popularity baseline ({_fmt(baseline)}) "
            f"{by}: first champion"
        )
    return True, f"{value} beats {against} and the popularity baseline ({_fmt(baseline)}) {by}"


def register_and_gate(
    model_uri: str,
    metrics: Mapping[str, float],
    baseline_metrics: Mapping[str, float],
    *,
    metric: str = "ndcg@10",
    margin: float = 0.0,
    name: str = DEFAULT_MODEL_NAME,
) -> GateDecision:
    """Register a finished model and alias it ``champion`` or ``challenger``.

    Inputs are checked and the version registered before any alias is touched, so a failure on
    the way (missing metric, registry down, failed registration) raises and leaves the serving
    champion exactly as it was. Callers pass ``metric`` and ``margin`` from their settings.
    """
    candidate = metric_value(metrics, metric)
    baseline = metric_value(baseline_metrics, metric)
    if candidate is None:
        raise ValueError(f"the candidate's metrics lack the gate metric {metric!r}")
    if baseline is None:
        raise ValueError(f"the popularity baseline's metrics lack the gate metric {metric!r}")
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")

    client = MlflowClient()
    registered = mlflow.register_model(model_uri, name)
    if registered.status != "READY":
        raise RuntimeError(
            f"model version {name} v{registered.version} is {registered.status}: "
            f"{registered.status_message or 'no message'}"
        )
    version = str(registered.version)

    # Read the champion after registering, so the window in which another gate could move it
    # is as short as possible.
    current = _champion(client, name)
    champion_version = str(current.version) if current is not None else None
    champion = version_metric(client, current, metric) if current is not None else None

    promoted, reason = _decide(metric, candidate, champion, champion_version, baseline, margin)
    alias = CHAMPION if promoted else CHALLENGER
    tags = {
        "gate_decision": "promoted" if promoted else "rejected",
        "gate_reason": reason,
        "gate_metric": metric,
        "gate_margin": _fmt(margin),
        "gate_candidate": _fmt(candidate),
        "gate_champion": _fmt(champion) if champion is not None else "none",
        "gate_champion_version": champion_version or "none",
        "gate_baseline": _fmt(baseline),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, alias, version)
    if promoted and champion_version is not None:
        client.set_model_version_tag(name, champion_version, "superseded_by", version)
    return GateDecision(
        promoted=promoted,
        version=version,
        alias=alias,
        reason=reason,
        metric=metric,
        candidate=candidate,
        champion=champion,
        baseline=baseline,
        champion_version=champion_version,
    )


def champion_metric(name: str, metric: str) -> tuple[str | None, float | None]:
    """The champion's version and its recorded ``metric`` (``None, None`` without a champion)."""
    client = MlflowClient()
    current = _champion(client, name)
    if current is None:
        return None, None
    return str(current.version), version_metric(client, current, metric)
