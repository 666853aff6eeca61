"""The canary stage judged on the endpoint's outcome read-out: pass early, roll back, or wait."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import registry
from contracts.settings import Settings
from pipelines.steps import rollout


def _trial(decision: str, calls: int = 80, reason: str = "the figures") -> dict[str, Any]:
    health = {"version": "2", "requests": calls, "error_rate": 0.0, "p95_ms": 12.0}
    return {"stage": "canary", "stable": health | {"version": "1"}, "candidate": health,
            "readout": {"decision": decision, "reason": reason, "mode": "split"}}


class _Endpoint:
    """The endpoint's answers, one per poll (the last repeats), and what was logged."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: list[dict[str, Any]]) -> None:
        self.answers, self.polls, self.logged = answers, 0, []
        monkeypatch.setattr(rollout, "_plan", lambda _: registry.RolloutPlan("2", "1", "canary"))
        monkeypatch.setattr(registry, "set_stage", lambda *_: None)
        monkeypatch.setattr(rollout, "reload_endpoint", self.next)
        monkeypatch.setattr(rollout, "endpoint_metadata", self.next)
        monkeypatch.setattr(rollout.readouts, "log_readout", self.log)

    def next(self, _settings: Settings) -> dict[str, Any]:
        answer = self.answers[min(self.polls, len(self.answers) - 1)]
        self.polls += 1
        return answer

    def log(self, _settings, version, stable, summary, verdict) -> str:
        self.logged.append((version, stable, summary["decision"], verdict))
        return "run-1"


RULES = Settings(pseudonym_key="k", rollout_min_requests=50)


def test_a_canary_passes_as_soon_as_its_read_out_does(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = _Endpoint(monkeypatch, [{"rollout": _trial("wait")},
                                       {"rollout": _trial("pass", reason="above the margin")}])
    slept: list[float] = []
    result = rollout.advance(RULES, "canary", wait_s=3600, sleep=slept.append)
    assert len(slept) == 1, "no waiting out the hour once the read-out passes"
    assert result.stage == "canary" and result.readout_run_id == "run-1"
    assert result.reason.endswith("; above the margin") and "80 calls" in result.reason
    assert endpoint.logged == [("2", "1", "pass", "passed")]


def test_a_passing_read_out_still_needs_the_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    _Endpoint(monkeypatch, [{"rollout": _trial("pass", calls=10)}])
    with pytest.raises(rollout.NotEnoughTraffic, match="got 10 of the 50 calls"):
        rollout.advance(RULES, "canary", wait_s=0.05, sleep=lambda _: None)


def test_an_undecided_canary_stays_in_canary_with_the_figures(
        monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = _Endpoint(monkeypatch, [{"rollout": _trial("wait", reason="12 of the 100 "
                                                          "shoppers needed")}])
    with pytest.raises(rollout.Undecided, match="read-out is undecided: 12 of the 100 shoppers "
                       "needed; it stays in canary") as caught:
        rollout.advance(RULES, "canary", wait_s=0.05, sleep=lambda _: None)
    assert isinstance(caught.value, rollout.NotEnoughTraffic), "the CLI's exit 1 path"
    assert endpoint.logged == [("2", "1", "wait", "undecided")]


def test_a_canary_the_endpoint_rolled_back_on_its_outcomes_is_logged_and_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"version": "2", "reason": "canary: add_to_cart rate difference -0.0400 ...",
             "figures": _trial("roll_back")}
    endpoint = _Endpoint(monkeypatch, [{"rollout": _trial("wait")},
                                       {"rollout": None, "rollbacks": [event]}])
    with pytest.raises(rollout.RolledBack, match="v2 was rolled back: canary: add_to_cart"):
        rollout.advance(RULES, "canary", wait_s=3600, sleep=lambda _: None)
    assert endpoint.logged == [("2", "1", "roll_back", "rolled_back")]


def test_shadow_is_not_judged_on_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = _trial("wait") | {"stage": "shadow", "readout": None}
    endpoint = _Endpoint(monkeypatch, [{"rollout": shadow}])
    assert rollout.advance(RULES, "shadow", wait_s=0.05, sleep=lambda _: None).stage == "shadow"
    assert endpoint.logged == []
