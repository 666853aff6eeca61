"""Choosing among candidates: the best by the gate metric, judged on the window, then gated.

Kept apart from training so candidates can be trained in parallel (one MLflow run each) and the
decision taken once. ``evaluate_candidates`` re-scores the best candidate, the serving champion
and the baselines on the same evaluation window (``pipelines.evaluation.gate_window``); ``register``
writes the gate's decision on a new version without moving any alias, so the DAG can package and
check that exact version first (``pipelines.steps.bento_check``) and then ``move_alias``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts import registry
from contracts.settings import Settings
from pipelines.tracking.register import (
    GateDecision,
    GateEvidence,
    metric_value,
    move_alias,
    register_and_gate,
    register_version,
)

log = logging.getLogger(__name__)
RANK_TAG = "shoprec.candidate_rank"
CANDIDATE, CHAMPION = "candidate", "champion"


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
    """The best candidate and the gate's evidence on the window, before the gate."""

    best: CandidateResult
    metric: str
    ranking: list[dict[str, Any]]  # every candidate's run id, overrides and value, best first
    evidence: GateEvidence
    probe_user: str | None  # a shopper of the window the candidate knows: the Bento check's

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(**{**data, "best": CandidateResult(**data["best"]),
                      "evidence": GateEvidence(**data["evidence"])})


def _value(candidate: CandidateResult, metric: str) -> float | None:
    """The candidate's gate metric; ``None`` when missing or NaN (JSON has no NaN)."""
    value = metric_value(candidate.metrics, metric)
    return None if value is None or math.isnan(value) else value


def rank_candidates(
    settings: Settings, candidates: Sequence[CandidateResult | Mapping[str, Any]]
) -> list[CandidateResult]:
    """The candidates best first by their own validation figure of the gate metric (missing or
    NaN last); each run is tagged with its rank, so the compare view shows which one the
    pipeline put forward."""
    found = [c if isinstance(c, CandidateResult) else CandidateResult(**c) for c in candidates]
    if not found:
        raise ValueError("no trained candidates to evaluate")
    metric = settings.gate.metric
    ranked = sorted(found, key=lambda c: -math.inf if (v := _value(c, metric)) is None else v,
                    reverse=True)
    registry.configure(settings)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for rank, candidate in enumerate(ranked, start=1):
        client.set_tag(candidate.run_id, RANK_TAG, str(rank))
    return ranked


def evaluate_candidates(
    settings: Settings,
    candidates: Sequence[CandidateResult | Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, float]],
    features_uri: str | None = None,
) -> Evaluation:
    """Rank the candidates, then score the best, the champion and the baselines on the window
    of ``features_uri`` (default: the feature set of the settings' data, the one the candidates
    were trained on) and log every figure on the best candidate's run.

    ``baselines`` are the baselines step's figures: the re-fitted floor must match them (same
    split, same λ), else something differs between the two and a warning says so.
    """
    from contracts.pyfunc import load_logged
    from pipelines.evaluation import gate_window as ge
    from pipelines.steps.features import build_features_step

    ranked = rank_candidates(settings, candidates)
    best, metric = ranked[0], settings.gate.metric
    window = ge.load_window(features_uri or build_features_step(settings))
    candidate = load_logged(best.model_uri)
    models = _topks(window, CANDIDATE, candidate)
    champion_version, note = _champion_version(settings), None
    if champion_version is not None:
        try:
            champion = load_logged(f"models:/{settings.model_name}/{champion_version}")
            models |= _topks(window, CHAMPION, champion)
        except Exception as err:  # noqa: BLE001  (any failure means: not comparable, refuse)
            note = f"{type(err).__name__}: {err}"[:300]
            log.warning("champion v%s could not be re-scored: %s", champion_version, note)
    floors, described = ge.baseline_topks(settings, window)
    pairs = [(CANDIDATE, CHAMPION)] if CHAMPION in models else []
    evaluation = ge.evaluate_window(window, models, floors, pairs, metric)
    evaluation.model_uris = {CANDIDATE: best.model_uri} | (
        {CHAMPION: f"models:/{settings.model_name}/{champion_version}"} if champion_version
        else {})
    if note:
        evaluation.notes[CHAMPION] = note
    _check_floor(_floor_values(window, evaluation, floors), baselines, metric)
    ge.log_evaluation(best.run_id, evaluation)
    name = evaluation.best_baseline(metric)
    chosen_on = evaluation.selection.get("paired", {}).get(f"{CANDIDATE}-{name}")
    evidence = GateEvidence(
        metric=metric, users=evaluation.users, candidate=evaluation.value(CANDIDATE, metric),
        baseline_name=name, baseline=evaluation.value(name, metric),
        vs_baseline=evaluation.paired[f"{CANDIDATE}-{name}"][metric], floor=described[name],
        champion_version=champion_version,
        champion=evaluation.value(CHAMPION, metric) if CHAMPION in models else None,
        vs_champion=(evaluation.paired[f"{CANDIDATE}-{CHAMPION}"][metric]
                     if CHAMPION in models else None),
        note=note, split_kind=window.features.split_kind,
        selection_users=evaluation.selection.get("users"),
        selection_vs_baseline=chosen_on[metric] if chosen_on else None,
    )
    probe = next((window.split.users[r] for r in window.split.rows
                  if candidate.is_known(window.split.users[r])), None)
    if evidence.selection_vs_baseline is not None:
        log.info("candidate - %s, %s: %+.4f on the selection slice (%d shoppers), %+.4f on the "
                 "gate slice (%d): the gate decides on the latter", name, metric,
                 evidence.selection_vs_baseline["value"], evidence.selection_users,
                 evidence.vs_baseline["value"], evidence.users)
    log.info("best of %d candidates: run %s; on %d shoppers %s %s, champion %s, %s %s",
             len(ranked), best.run_id, evidence.users, metric, evidence.candidate,
             evidence.champion, name, evidence.baseline)
    return Evaluation(best=best, metric=metric, evidence=evidence, probe_user=probe,
                      ranking=[{"run_id": c.run_id, "overrides": c.overrides,
                                "value": _value(c, metric)} for c in ranked])


def _topks(window, name: str, recommender) -> dict[str, Any]:
    """A model's lists on the gate slice, and on the selection slice as ``<name>@selection``
    when the window has one."""
    from pipelines.evaluation import gate_window as ge

    out = {name: ge.model_topk(recommender, window)}
    if window.selection is not None:
        out[f"{name}{ge.SELECTION}"] = ge.model_topk(recommender, window,
                                                     split=window.selection)
    return out


def _floor_values(window, evaluation, floors: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Each baseline's figures on the slice the baselines step judged it on: the selection
    slice when there is one (its ``validation_split``), else the gate's window."""
    from pipelines.evaluation.gate_window import SELECTION
    from pipelines.evaluation.splits import evaluate_on_split

    if window.selection is None:
        return {name: {m: f["value"] for m, f in figures.items()
                       if isinstance(f, dict) and "value" in f}
                for name, figures in evaluation.baselines.items()}
    return {name.removesuffix(SELECTION): evaluate_on_split(topk, window.selection,
                                                            window.features)
            for name, topk in floors.items() if name.endswith(SELECTION)}


def _champion_version(settings: Settings) -> str | None:
    from mlflow.tracking import MlflowClient

    registry.configure(settings)
    found = registry.champion(MlflowClient(), settings.model_name)
    return str(found.version) if found is not None else None


def _check_floor(refitted: Mapping[str, Mapping[str, float]],
                 baselines: Mapping[str, Mapping[str, float]], metric: str) -> None:
    """Warn when a baseline re-fitted here scores otherwise than the baselines step logged (on
    the same slice)."""
    for name, metrics in baselines.items():
        logged = metric_value(metrics, metric)
        ours = metric_value(refitted[name], metric) if name in refitted else None
        if logged is not None and ours is not None and not math.isclose(
                logged, ours, rel_tol=1e-6, abs_tol=1e-9):
            log.warning("%s re-fitted on the window scores %s %s, the baselines step logged %s",
                        name, metric, ours, logged)


def register(settings: Settings, evaluation: Evaluation | Mapping[str, Any]) -> GateDecision:
    """Register the best candidate and write the gate's decision on it; no alias moves."""
    evaluation = _evaluation(evaluation)
    registry.configure(settings)
    return register_version(evaluation.best.model_uri, evaluation.evidence,
                            margin=settings.gate.margin, min_users=settings.gate.min_users,
                            noninferiority_margin=settings.gate.noninferiority_margin,
                            name=settings.model_name)


def apply_decision(settings: Settings, decision: GateDecision | Mapping[str, Any]
                   ) -> GateDecision:
    """Move the alias the gate chose (after the packaged version was checked)."""
    if not isinstance(decision, GateDecision):
        decision = GateDecision(**decision)
    registry.configure(settings)
    return move_alias(decision, settings.model_name)


def promote(settings: Settings, evaluation: Evaluation | Mapping[str, Any]) -> GateDecision:
    """Register the best candidate and let the gate alias it at once (``shoprec train``, which
    packages nothing; the DAG registers, packages, checks the Bento, then moves the alias)."""
    evaluation = _evaluation(evaluation)
    registry.configure(settings)
    return register_and_gate(evaluation.best.model_uri, evaluation.evidence,
                             margin=settings.gate.margin, min_users=settings.gate.min_users,
                             noninferiority_margin=settings.gate.noninferiority_margin,
                             name=settings.model_name)


def _evaluation(evaluation: Evaluation | Mapping[str, Any]) -> Evaluation:
    return evaluation if isinstance(evaluation, Evaluation) else Evaluation.from_json(evaluation)
