"""The registry gate: every model is registered; only a measurably better one replaces a champion.

Serving loads ``models:/shoprec@champion``; this module is the only place that moves that alias. The
gate decides on evidence measured on one evaluation window (``pipelines.evaluation.gate_window``),
and only if the window holds at least ``gate_min_users`` shoppers. Replacing a champion needs
superiority: on the same shoppers, the paired difference of the gate metric against the current
champion and against the best baseline (the stronger of popularity and EASE) has its 95 % bootstrap
lower bound above the margin. A first version (no champion yet) needs only non-inferiority to the
best baseline (lower bound above minus ``gate_noninferiority_margin``): a shop without a champion
gets no answers at all, worse than a model no worse than EASE. Otherwise it is kept as
``challenger``. Either way the decision and its reason are written on the version before any alias
moves, and the alias moves in a separate step (``move_alias``), after the packaged model has proved
it serves."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from contracts.registry import CHALLENGER, CHAMPION, DEFAULT_MODEL_NAME, champion
from pipelines.tracking.runs import mlflow_key

NON_INFERIORITY, SUPERIORITY = "non_inferiority", "superiority"


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
    split_kind: str = "time"  # how the window was cut (``FeatureSet.split_kind``)
    # The same paired difference on the selection slice the candidate was chosen on, and its
    # shoppers: on record (the optimism the gate slice removes), never decided on.
    selection_users: int | None = None
    selection_vs_baseline: dict[str, Any] | None = None

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
    rule: str | None = None  # NON_INFERIORITY (first version) or SUPERIORITY (replacing one)

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


def metric_value(metrics: Mapping[str, float], metric: str) -> float | None:
    """A metric by its display name (``ndcg@10``) or its MLflow name (``ndcg_at_10``)."""
    for key in (metric, mlflow_key(metric)):
        if key in metrics:
            return float(metrics[key])
    return None


def gate_rule(current_champion: str | None) -> str:
    """Which rule judges a version: non-inferiority while no version serves (any model no worse
    than the floor beats serving nothing), superiority to replace one (a change must be earned)."""
    return NON_INFERIORITY if current_champion is None else SUPERIORITY


def _decide(
    evidence: GateEvidence,
    current_champion: str | None,
    margin: float,
    min_users: int,
    noninferiority_margin: float,
) -> tuple[bool, str]:
    """The rule, first failing condition first; the reason names the figures it rests on."""
    if evidence.users < min_users or evidence.candidate is None or evidence.baseline is None:
        return False, (
            f"only {evidence.users} shoppers in the evaluation window, fewer than the minimum "
            f"{min_users} (gate_min_users): too few to tell models apart, not promoted"
        )
    if current_champion != evidence.champion_version:
        now, then = (f"v{v}" if v else "none" for v in (current_champion,
                                                         evidence.champion_version))
        return False, (f"the champion is {now} now, but the evaluation measured against {then}: "
                       "not promoted; run the gate again")
    if current_champion is None:
        return _non_inferior(evidence, noninferiority_margin, margin)
    return _superior(evidence, current_champion, margin)


def _phrases(evidence: GateEvidence) -> tuple[str, str, str]:
    """The candidate's value, the shoppers it rests on and the floor, as the reasons quote them."""
    held_out = " (each one's latest events held out)" if evidence.split_kind != "time" else ""
    gate = " of the gate slice" if evidence.selection_users is not None else ""
    return (f"{evidence.metric} {_fmt(evidence.candidate)}",
            f"on the same {evidence.users} shoppers{gate}{held_out}",
            f"the best baseline, {evidence.baseline_name} ({evidence.floor}), "
            f"{_fmt(evidence.baseline)}")


def _non_inferior(evidence: GateEvidence, noninferiority_margin: float,
                  margin: float) -> tuple[bool, str]:
    """A first version: its paired lower bound against the floor above minus the margin. The
    reason also says when it is better than the floor by superiority's bar (``margin``)."""
    value, on, floor = _phrases(evidence)
    bound = _fmt(-noninferiority_margin or 0.0)  # no "-0"
    if not _clears(evidence.vs_baseline, -noninferiority_margin):
        return False, (
            f"{value} is not shown to be no worse than {floor} {on}: "
            f"{_difference(evidence.vs_baseline)}, lower bound not above {bound} "
            f"(first version, non-inferiority margin {_fmt(noninferiority_margin)})"
        )
    low = _fmt(float(evidence.vs_baseline["ci95"][0]))
    better = (f"; better than it too: lower bound above margin {_fmt(margin)}, superiority's bar"
              if _clears(evidence.vs_baseline, margin) else "")
    return True, (
        f"first champion by non-inferiority: {value} is no worse than {floor} {on} "
        f"({_difference(evidence.vs_baseline)}), lower bound {low} above {bound}{better}"
    )


def _superior(evidence: GateEvidence, current_champion: str, margin: float) -> tuple[bool, str]:
    """Replacing a champion: lower bounds against it and against the floor above the margin."""
    value, on, floor = _phrases(evidence)
    by = f"lower bound not above margin {_fmt(margin)}"
    against = f"champion v{current_champion}"
    if evidence.vs_champion is None:
        return False, (
            f"{value} cannot be compared: {against} could not be re-scored on this window "
            f"({evidence.note or 'no reason given'}); move the alias by hand if this version "
            "should serve"
        )
    if not _clears(evidence.vs_champion, margin):
        return False, (
            f"{value} does not beat {against} ({_maybe(evidence.champion)}) {on}: "
            f"{_difference(evidence.vs_champion)}, {by}"
        )
    if not _clears(evidence.vs_baseline, margin):
        return False, (
            f"{value} does not beat {floor} {on}: {_difference(evidence.vs_baseline)}, {by}"
        )
    return True, (
        f"{value} beats {against} ({_maybe(evidence.champion)}; "
        f"{_difference(evidence.vs_champion)}) and {floor} ({_difference(evidence.vs_baseline)}) "
        f"{on}, 95 % lower bounds above margin {_fmt(margin)}: champion replaced by superiority"
    )


def register_version(
    model_uri: str,
    evidence: GateEvidence,
    *,
    margin: float = 0.0,
    min_users: int = 1,
    noninferiority_margin: float = 0.0,
    name: str = DEFAULT_MODEL_NAME,
) -> GateDecision:
    """Register a finished model, decide on ``evidence`` and write the decision on the version;
    no alias moves here (``move_alias`` does that, once the packaged version has been checked).

    Inputs are checked before anything is registered, so a bad call leaves the registry as it
    was. Callers pass ``margin``, ``min_users`` and ``noninferiority_margin`` from their
    settings; the defaults are the strictest (a first version must beat the floor).
    """
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    if noninferiority_margin < 0:
        raise ValueError(f"noninferiority_margin must be non-negative, got "
                         f"{noninferiority_margin}")
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
    current = champion(client, name)
    current_version = str(current.version) if current is not None else None
    rule = gate_rule(current_version)
    promoted, reason = _decide(evidence, current_version, margin, min_users,
                               noninferiority_margin)
    tags = {
        "gate_decision": "promoted" if promoted else "rejected",
        "gate_reason": reason,
        "gate_rule": rule,
        "gate_metric": evidence.metric,
        "gate_margin": _fmt(margin),
        "gate_noninferiority_margin": _fmt(noninferiority_margin),
        "gate_candidate": _maybe(evidence.candidate),
        "gate_champion": _maybe(evidence.champion),
        "gate_champion_version": current_version or "none",
        "gate_baseline": _maybe(evidence.baseline),
        "gate_baseline_name": evidence.baseline_name,
        "gate_floor": evidence.floor,
        "gate_users": str(evidence.users),
        "gate_split": evidence.split_kind,
        "gate_min_users": str(min_users),
        "gate_vs_baseline": _difference(evidence.vs_baseline),
        "gate_vs_champion": _difference(evidence.vs_champion),
        "gate_selection_vs_baseline": _difference(evidence.selection_vs_baseline),
        "gate_selection_users": str(evidence.selection_users),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return GateDecision(
        promoted=promoted, version=version, alias=CHAMPION if promoted else CHALLENGER,
        reason=reason, metric=evidence.metric, candidate=evidence.candidate,
        champion=evidence.champion, baseline=evidence.baseline,
        champion_version=current_version, users=evidence.users,
        baseline_name=evidence.baseline_name, rule=rule,
    )


def move_alias(decision: GateDecision, name: str = DEFAULT_MODEL_NAME) -> GateDecision:
    """Give the version the alias the gate chose. A champion that moved since the decision
    stops here (raises, nothing moved): the decision was taken against another model."""
    client = MlflowClient()
    if decision.promoted:
        current = champion(client, name)
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
    noninferiority_margin: float = 0.0,
    name: str = DEFAULT_MODEL_NAME,
) -> GateDecision:
    """``register_version`` then ``move_alias`` at once: for callers that package nothing
    (``shoprec train``); the DAG checks the packaged Bento in between."""
    decision = register_version(model_uri, evidence, margin=margin, min_users=min_users,
                                noninferiority_margin=noninferiority_margin, name=name)
    return move_alias(decision, name)
