"""Rolling a new champion out on the endpoint: shadow, then canary, then full (or back).

The registry holds the rollout's state (``contracts.registry``: the ``stable`` alias and the
champion's ``rollout_stage`` tag), so every endpoint replica, and a restarted one, agrees on it.
These functions move that state, tell the endpoint over HTTP (``POST /admin/reload``) and watch
the stage through ``GET /metadata``. The endpoint judges the candidate itself and rolls it back
the moment it breaks a threshold; a stage here only waits, then reports whether the candidate
got through with enough traffic to say so. A canary is also judged on what shoppers did after
its answers (the endpoint's outcome read-out, ``contracts.readout``): it passes as soon as the
read-out says so, comes back when the endpoint rolls it back on it, and is ``Undecided`` when
the stage ends first; each canary ends with an MLflow run of its read-out
(``pipelines.steps.readout``). The DAG's rollout tasks and ``shoprec rollout`` call these same
functions. No Airflow import here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from contracts import registry
from contracts.online_stats import PASS
from contracts.registry import CANARY, FULL, SHADOW
from contracts.settings import Settings
from pipelines.steps import readout as readouts
from pipelines.steps.package import endpoint_metadata, reload_endpoint

log = logging.getLogger(__name__)

STAGES = (SHADOW, CANARY, FULL)
POLL_S = 5.0


class RolledBack(RuntimeError):
    """The candidate was taken back during its stage; the message says why, ``figures`` holds
    the endpoint's counts (and read-out) at that moment when it gave them."""

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = figures


class NotEnoughTraffic(RuntimeError):
    """The stage ended with too few candidate calls to judge; the rollout stays where it is."""


class Undecided(NotEnoughTraffic):
    """The canary's outcome read-out neither passed nor failed it by the stage's end (too few
    shoppers, or an interval still around the margin); the rollout stays in canary."""


@dataclass
class StageResult:
    stage: str
    version: str
    stable: str
    reason: str
    rollout: dict[str, Any] | None = None  # the endpoint's counts at the end of the stage
    readout_run_id: str | None = None  # the canary's read-out in MLflow

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def advance(settings: Settings, stage: str, wait_s: float | None = None,
            sleep: Callable[[float], None] = time.sleep) -> StageResult:
    """Put the champion on trial in ``stage`` and, for shadow and canary, watch it for
    ``wait_s`` seconds (default ``settings.rollout.stage_seconds``); ``full`` makes it stable.

    Raises ``RolledBack`` when the endpoint took it back meanwhile, ``NotEnoughTraffic`` when
    it got fewer than ``rollout_min_requests`` calls. A first champion (no ``stable`` yet) has
    nothing to be compared with: it is marked stable at once.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown rollout stage {stage!r}: one of {', '.join(STAGES)}")
    name, plan = settings.model_name, _plan(settings)
    champion, stable = plan.champion, plan.stable
    if stable is None:
        registry.mark_stable(name, champion)
        return StageResult(FULL, champion, champion, f"v{champion} is the first champion rolled "
                           "out: nothing to compare it with, marked stable")
    if plan.stage is None:
        return StageResult(FULL, champion, stable,
                           f"nothing to roll out: v{champion} already serves all traffic")
    if stage == FULL:
        registry.mark_stable(name, champion)
        reload_endpoint(settings)
        return StageResult(FULL, champion, champion,
                           f"v{champion} serves all traffic now (v{stable} before)")
    registry.set_stage(name, champion, stage)
    try:
        trial = _watch(settings, stage, champion, wait_s, sleep)
    except RolledBack as err:
        found = (err.figures or {}).get("readout")
        if stage == CANARY and found is not None:
            readouts.log_readout(settings, champion, stable, found, "rolled_back")
        raise
    calls = trial["candidate"]["requests"]
    if calls < settings.rollout.min_requests:
        raise NotEnoughTraffic(
            f"v{champion} got {calls} of the {settings.rollout.min_requests} calls needed to "
            f"judge it in {stage}; it stays in {stage}: run `shoprec rollout {stage}` again to "
            "extend, or `shoprec rollout rollback`")
    health, found = trial["candidate"], trial.get("readout")
    reason = (f"v{champion} passed {stage}: {calls} calls, error rate "
              f"{health['error_rate']:.1%}, p95 {health['p95_ms']} ms against "
              f"v{stable}'s {trial['stable']['p95_ms']} ms")
    if stage != CANARY or found is None:
        return StageResult(stage, champion, stable, reason, trial)
    passed = found["decision"] == PASS
    run_id = readouts.log_readout(settings, champion, stable, found,
                                  "passed" if passed else "undecided")
    if not passed:
        raise Undecided(f"v{champion}'s canary read-out is undecided: {found['reason']}; it "
                        "stays in canary: run `shoprec rollout canary` again to extend, or "
                        "`shoprec rollout rollback`")
    return StageResult(stage, champion, stable, f"{reason}; {found['reason']}", trial, run_id)


def _watch(settings: Settings, stage: str, champion: str, wait_s: float | None,
           sleep: Callable[[float], None]) -> dict[str, Any]:
    """The endpoint's rollout of ``champion`` at the end of the stage, or as soon as a canary
    has its calls and a read-out that passes it; ``RolledBack`` when the endpoint took it back."""
    trial = _trial(settings, reload_endpoint(settings), champion)
    deadline = time.monotonic() + (settings.rollout.stage_seconds if wait_s is None else wait_s)
    while (left := deadline - time.monotonic()) > 0:
        found = trial.get("readout")
        if (stage == CANARY and found is not None and found["decision"] == PASS
                and trial["candidate"]["requests"] >= settings.rollout.min_requests):
            break
        sleep(min(POLL_S, left))
        trial = _trial(settings, endpoint_metadata(settings), champion)
    return trial


def roll_back(settings: Settings, reason: str) -> StageResult:
    """The operator's rollback: champion back on the stable version, ``reason`` tagged."""
    name, plan = settings.model_name, _plan(settings)
    if plan.stage is None:
        raise LookupError(f"nothing on trial: v{plan.champion} serves all traffic")
    registry.roll_back(name, plan.champion, plan.stable, f"operator: {reason}")
    reload_endpoint(settings)
    return StageResult("rolled_back", plan.champion, plan.stable, f"operator: {reason}")


def status(settings: Settings) -> dict[str, Any]:
    """The registry's rollout state, the endpoint's view of it (counts, the live read-out,
    rollbacks), and in canary the read-out computed from the endpoint's logs since the stage
    began (``readout_from_logs``; null elsewhere, or when the logs hold nothing yet)."""
    plan = _plan(settings)
    served = endpoint_metadata(settings)
    since = plan.since_time
    from_logs = None
    if plan.stage == CANARY and since is not None:
        try:
            from_logs = readouts.from_logs(settings, plan.stable, plan.champion, since)
        except Exception as err:  # unreadable logs: the endpoint's own read-out still shows
            log.warning("no read-out from the logs: %s: %s", type(err).__name__, err)
    return {"champion": plan.champion, "stable": plan.stable, "stage": plan.stage or FULL,
            "since": plan.since, "readout_from_logs": from_logs,
            "endpoint": {"version": served["version"], "rollout": served["rollout"],
                         "rollbacks": served["rollbacks"]}}


def _plan(settings: Settings) -> registry.RolloutPlan:
    registry.configure(settings)
    plan = registry.rollout_plan(settings.model_name)
    if plan.champion is None:
        raise LookupError(f"{registry.NO_CHAMPION} for {settings.model_name!r}")
    return plan


def _trial(settings: Settings, answer: dict[str, Any], version: str) -> dict[str, Any]:
    """The endpoint's rollout of ``version`` in its reload or metadata ``answer``;
    ``RolledBack`` with the endpoint's reason when it no longer runs it."""
    rollout = answer.get("rollout")
    if rollout is not None and rollout["candidate"]["version"] == version:
        return rollout
    events = (answer if "rollbacks" in answer else endpoint_metadata(settings))["rollbacks"]
    event = next((e for e in events if e["version"] == version), None)
    reason = event["reason"] if event else "the endpoint no longer runs it; see its log"
    raise RolledBack(f"v{version} was rolled back: {reason}", event and event.get("figures"))
