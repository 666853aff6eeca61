"""The registry gate: every finished model is registered, only a measurably better one serves.

Serving loads ``models:/shoprec@champion``; this module is the only place that moves that alias.
The gate decides on evidence measured on one evaluation window (``pipelines.gate_evaluation``):
a new version becomes champion only if, on the same shoppers, the paired difference of the gate
metric against the current champion and against the best baseline (the stronger of popularity
and EASE) has its 95 % bootstrap lower bound above the margin, and only if the window holds at
least ``gate_min_users`` shoppers. Otherwise it is kept as ``challenger``. Either way the
decision and its reason are written on the version before any alias moves, and the alias moves
in a separate step (``move_alias``), after the packaged model has proved it serves.
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
class GateEvidence:
    """What the gate decides on, all measured on one window (small: it travels through XCom).

    ``vs_champion`` and ``vs_baseline`` are paired differences, candidate minus the other, as
    ``{"value": d, "ci95": [lo, hi]}``; ``vs_champion`` is None without a champion, or when the
    champion could not be re-scored (``note`` says why).
    """

    metric: str
    users: int
    candidate: float | None  # None: no shopper to measure it on
    baseline_name: str
    baseline: float | None
    vs_baseline: dict[str, Any]
    floor: str  # how that baseline was configured (EASE's λ, restricted or not)
    champion_version: str | None = None
    champion: float | None = None
    vs_champion: dict[str, Any] | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateDecision:
    """What the gate did with one model version, and why (also written as version tags)."""

    promoted: bool
    version: str
    alias: str
    reason: str
    metric: str
    candidate: float | None
    champion: float | None
    baseline: float | None
    champion_version: str | None = None
    users: int | None = None
    baseline_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _maybe(value: float | None) -> str:
    return "none" if value is None else _fmt(value)


def _difference(figure: Mapping[str, Any] | None) -> str:
    if figure is None or figure.get("ci95") is None:
        return "none"
    low, high = figure["ci95"]
    return f"paired difference {figure['value']:+.4g}, 95 % CI [{low:.4g}, {high:.4g}]"


def _clears(figure: Mapping[str, Any] | None, margin: float) -> bool:
    """The paired difference's lower bound strictly above the margin; NaN clears nothing."""
    if figure is None or figure.get("ci95") is None:
        return False
    low = float(figure["ci95"][0])
    return not math.isnan(low) and low > margin


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    if CHAMPION not in aliases(client, name):
        return None
    return client.get_model_version_by_alias(name, CHAMPION)


def metric_value(metrics: Mapping[str, float], metric: str) -> float | None:
    """A metric by its display name (``ndcg@10``) or its MLflow name (``ndcg_at_10``)."""
    for key in (metric, mlflow_key(metric)):
        if key in metrics:
            return float(metrics[key])
    return None


def _decide(
    evidence: GateEvidence, current_champion: str | None, margin: float, min_users: int
) -> tuple[bool, str]:
    """The rule, first failing condition first; the reason names the figures it rests on."""
    if evidence.users < min_users or evidence.candidate is None or evidence.baseline is None:
        return False, (
            f"only {evidence.users} shoppers in the evaluation window, fewer than the minimum "
            f"{min_users} (gate_min_users): too few to tell models apart, not promoted"
        )
    value = f"{evidence.metric} {_fmt(evidence.candidate)}"
    on = f"on the same {evidence.users} shoppers"
    by = f"lower bound not above margin {_fmt(margin)}"
    floor = (f"the best baseline, {evidence.baseline_name} ({evidence.floor}), "
             f"{_fmt(evidence.baseline)}")
    if current_champion != evidence.champion_version:
        now, then = (f"v{v}" if v else "none" for v in (current_champion,
                                                         evidence.champion_version))
        return False, (f"the champion is {now} now, but the evaluation measured against {then}: "
                       "not promoted; run the gate again")
    against = f"champion v{current_champion}"
    if current_champion is not None and evidence.vs_champion is None:
        return False, (
            f"{value} cannot be compared: {against} could not be re-scored on this window "
            f"({evidence.note or 'no reason given'}); move the alias by hand if this version "
            "should serve"
        )
    if current_champion is not None and not _clears(evidence.vs_champion, margin):
        return False, (
            f"{value} does not beat {against} ({_maybe(evidence.champion)}) {on}: "
            f"{_difference(evidence.vs_champion)}, {by}"
        )
    if not _clears(evidence.vs_baseline, margin):
        return False, (
            f"{value} does not beat {floor} {on}: {_difference(evidence.vs_baseline)}, {by}"
        )
    beaten = (f"{against} ({_maybe(evidence.champion)}; {_difference(evidence.vs_champion)}) "
              "and " if current_champion else "")
    first = "" if current_champion else ": first champion"
    return True, (
        f"{value} beats {beaten}{floor} ({_difference(evidence.vs_baseline)}) {on}, "
        f"95 % lower bounds above margin {_fmt(margin)}{first}"
    )


def register_version(
    model_uri: str,
    evidence: GateEvidence,
    *,
    margin: float = 0.0,
    min_users: int = 1,
    name: str = DEFAULT_MODEL_NAME,
) -> GateDecision:
    """Register a finished model, decide on ``evidence`` and write the decision on the version;
    no alias moves here (``move_alias`` does that, once the packaged version has been checked).

    Inputs are checked before anything is registered, so a bad call leaves the registry as it
    was. Callers pass ``margin`` and ``min_users`` from their settings.
    """
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    if min_users < 1:
        raise ValueError(f"min_users must be at least 1, got {min_users}")

    client = MlflowClient()
    registered = mlflow.register_model(model_uri, name)
    if registered.status != "READY":
        raise RuntimeError(
            f"model version {name} v{registered.version} is {registered.status}: "
            f"{registered.status_message or 'no message'}"
        )
    version = str(registered.version)
    current = _champion(client, name)
    current_version = str(current.version) if current is not None else None
    promoted, reason = _decide(evidence, current_version, margin, min_users)
    tags = {
        "gate_decision": "promoted" if promoted else "rejected",
        "gate_reason": reason,
        "gate_metric": evidence.metric,
        "gate_margin": _fmt(margin),
        "gate_candidate": _maybe(evidence.candidate),
        "gate_champion": _maybe(evidence.champion),
        "gate_champion_version": current_version or "none",
        "gate_baseline": _maybe(evidence.baseline),
        "gate_baseline_name": evidence.baseline_name,
        "gate_floor": evidence.floor,
        "gate_users": str(evidence.users),
        "gate_min_users": str(min_users),
        "gate_vs_baseline": _difference(evidence.vs_baseline),
        "gate_vs_champion": _difference(evidence.vs_champion),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return GateDecision(
        promoted=promoted, version=version, alias=CHAMPION if promoted else CHALLENGER,
        reason=reason, metric=evidence.metric, candidate=evidence.candidate,
        champion=evidence.champion, baseline=evidence.baseline,
        champion_version=current_version, users=evidence.users,
        baseline_name=evidence.baseline_name,
    )


def move_alias(decision: GateDecision, name: str = DEFAULT_MODEL_NAME) -> GateDecision:
    """Give the version the alias the gate chose. A champion that moved since the decision
    stops here (raises, nothing moved): the decision was taken against another model."""
    client = MlflowClient()
    if decision.promoted:
        current = _champion(client, name)
        now = str(current.version) if current is not None else None
        if now != decision.champion_version:
            raise RuntimeError(
                f"the champion moved to v{now} since the gate compared v{decision.version} with "
                f"v{decision.champion_version}: alias left alone, run the gate again"
            )
    client.set_registered_model_alias(name, decision.alias, decision.version)
    if decision.promoted and decision.champion_version is not None:
        client.set_model_version_tag(name, decision.champion_version, "superseded_by",
                                     decision.version)
    return decision


def register_and_gate(
    model_uri: str,
    evidence: GateEvidence,
    *,
    margin: float = 0.0,
    min_users: int = 1,
    name: str = DEFAULT_MODEL_NAME,
) -> GateDecision:
    """``register_version`` then ``move_alias`` at once: for callers that package nothing
    (``shoprec train``); the DAG checks the packaged Bento in between."""
    decision = register_version(model_uri, evidence, margin=margin, min_users=min_users,
                                name=name)
    return move_alias(decision, name)
