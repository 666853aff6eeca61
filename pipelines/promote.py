"""Choosing among candidates: the best by the gate metric, set against the champion, then gated.

Kept apart from training so candidates can be trained in parallel (one MLflow run each) and the
decision taken once, and so that these steps never load TensorFlow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts import registry
from contracts.settings import Settings
from pipelines.register import GateDecision, champion_metric, metric_value, register_and_gate

log = logging.getLogger(__name__)
RANK_TAG = "shoprec.candidate_rank"


@dataclass
class CandidateResult:
    """One trained candidate: what the pipeline passes on (ids, URIs and a few metrics)."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    """The best candidate against the champion and the popularity baseline, before the gate."""

    best: CandidateResult
    metric: str
    candidate: float | None
    champion_version: str | None
    champion: float | None
    baseline_metrics: dict[str, float]  # the popularity baseline's: the gate's floor
    ranking: list[dict[str, Any]]  # every candidate's run id, overrides and value, best first

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(**{**data, "best": CandidateResult(**data["best"])})


def _value(candidate: CandidateResult, metric: str) -> float | None:
    """The candidate's gate metric; ``None`` when missing or NaN (JSON has no NaN)."""
    value = metric_value(candidate.metrics, metric)
    return None if value is None or math.isnan(value) else value


def evaluate_candidates(
    settings: Settings,
    candidates: Sequence[CandidateResult | Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, float]],
) -> Evaluation:
    """Rank the candidates by the gate metric and read the champion's recorded value.

    Each candidate's run is tagged with its rank, so the MLflow compare view shows which one the
    pipeline put forward. The gate itself re-reads the champion when it registers.
    """
    found = [c if isinstance(c, CandidateResult) else CandidateResult(**c) for c in candidates]
    if not found:
        raise ValueError("no trained candidates to evaluate")
    metric = settings.gate_metric
    ranked = sorted(found, key=lambda c: -math.inf if (v := _value(c, metric)) is None else v,
                    reverse=True)
    registry.configure(settings)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for rank, candidate in enumerate(ranked, start=1):
        client.set_tag(candidate.run_id, RANK_TAG, str(rank))
    version, champion = champion_metric(settings.model_name, metric)
    evaluation = Evaluation(
        best=ranked[0],
        metric=metric,
        candidate=_value(ranked[0], metric),
        champion_version=version,
        champion=champion,
        baseline_metrics=dict(baselines["popularity"]),
        ranking=[{"run_id": c.run_id, "overrides": c.overrides, "value": _value(c, metric)}
                 for c in ranked],
    )
    against = f"champion v{version} ({champion})" if version else "no champion yet"
    log.info("best of %d candidates: run %s, %s %s; %s; popularity %s", len(ranked),
             ranked[0].run_id, metric, evaluation.candidate, against,
             metric_value(evaluation.baseline_metrics, metric))
    return evaluation


def promote(settings: Settings, evaluation: Evaluation | Mapping[str, Any]) -> GateDecision:
    """Register the best candidate and let the registry gate decide whether it serves."""
    if not isinstance(evaluation, Evaluation):
        evaluation = Evaluation.from_json(evaluation)
    registry.configure(settings)
    best = evaluation.best
    return register_and_gate(
        best.model_uri, best.metrics, evaluation.baseline_metrics, metric=settings.gate_metric,
        margin=settings.gate_margin, name=settings.model_name,
    )
