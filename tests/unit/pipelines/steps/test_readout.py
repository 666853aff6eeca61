"""The read-out from the endpoint's logs equals the live one; its MLflow run on the version."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contracts.outcomes import outcomes_folder
from contracts.readout import SPLIT, Readout
from contracts.settings import Settings
from contracts.traffic import traffic_folder
from pipelines.steps import readout as readouts
from pipelines.tracking import runs
from serving.attribution import Answer, Joined, OutcomeLog
from serving.traffic_log import TrafficLog

NOW = datetime.now(UTC)
SINCE = NOW - timedelta(minutes=20)


def _rid(n: int) -> str:
    return f"r-{n:032x}"


def _write_logs(settings: Settings) -> Readout:
    """Two models' answers and outcomes in the endpoint's logs; the read-out the endpoint kept."""
    traffic, outcomes = TrafficLog(traffic_folder(settings)), OutcomeLog(outcomes_folder(settings))
    live = Readout("1", "2", SPLIT)
    n = 0
    for s in range(40):
        shopper, version = f"u_{s:016x}", "2" if s % 2 else "1"
        for minute in range(3):
            n += 1
            moment = SINCE + timedelta(minutes=minute + 1)
            traffic.append((moment, shopper, version, ["A", "B"], [0.9, 0.8], None, _rid(n),
                            True, None))
            live.impression(shopper, [version])
            if (s + minute) % (3 if version == "1" else 2) == 0:
                answer = Answer(_rid(n), shopper, moment, version, ("A", "B"), readout=live)
                for _ in range(2):  # the same outcome logged twice counts once
                    outcomes.append((moment, _rid(n), shopper, version, "B", "add_to_cart", 1,
                                     None, f"fb-{n}", "feedback/x.csv", True))
                live.outcome(shopper, version, "add_to_cart")
                if s == 3:  # a priced purchase, as the endpoint records it
                    outcomes.record(Joined(answer, "A", "purchase"), moment, 2, 10.0,
                                    f"fb-p{n}", "feedback/x.csv")
                    live.outcome(shopper, version, "purchase", 10.0)
    before = SINCE - timedelta(minutes=5)  # an earlier stage's answer: not in this read-out
    traffic.append((before, "u_0000000000000000", "1", ["A"], [0.9], None, _rid(999), True, None))
    traffic.append((NOW, "u_0000000000000001", "3", ["A"], [0.9], None, _rid(998), True, None))
    traffic.append((NOW, "u_0000000000000001", "1", ["A"], [0.9], None, _rid(997), False, None))
    traffic.close()
    outcomes.close()
    old = traffic_folder(settings) / f"date={NOW:%Y-%m-%d}" / "part-000000000000-1-0.parquet"
    pd.DataFrame({"time": [NOW], "pseudonym": ["u_0000000000000002"], "model_version": ["1"],
                  "items": [["A"]], "scores": [[0.5]], "fallback": [None]}).to_parquet(old)
    return live


def test_the_read_out_from_the_logs_is_the_one_the_endpoint_kept(settings: Settings) -> None:
    live = _write_logs(settings)
    rules = settings.rollout
    found = readouts.from_logs(settings, "1", "2", SINCE)
    assert found == live.summary(rules.outcome, rules.min_shoppers, rules.outcome_margin)
    assert found["stable"]["impressions"] == 60 and found["candidate"]["impressions"] == 60
    assert found["candidate"]["outcomes"]["add_to_cart"] == live.arms[1].count("add_to_cart")
    assert readouts.from_logs(settings, "1", "2", NOW + timedelta(minutes=1)) is None


def test_no_logs_no_read_out(settings: Settings) -> None:
    assert readouts.from_logs(settings, "1", "2", SINCE) is None


def test_each_canary_read_out_is_an_mlflow_run_on_the_candidate_version(
        local_store: Settings, tmp_path: Path) -> None:
    live = _write_logs(local_store)
    summary = live.summary("add_to_cart", 10, -0.01)
    run_id = readouts.log_readout(local_store, "2", "1", summary, "passed")
    run = MlflowClient().get_run(run_id)
    assert run.data.tags[readouts.VERSION_TAG] == "2"
    assert run.data.tags["shoprec.canary_verdict"] == "passed"
    assert run.data.tags["mlflow.note.content"] == summary["reason"]
    assert run.data.params["outcome"] == "add_to_cart" and run.data.params["margin"] == "-0.01"
    assert run.data.metrics["difference.low"] == summary["difference"]["low"]
    assert run.data.metrics["candidate.impressions"] == 60
    assert run.data.metrics["candidate.add_to_cart_rate"] == \
        summary["candidate"]["rates"]["add_to_cart"]["estimate"]
    path = MlflowClient().download_artifacts(run_id, "readout.json", str(tmp_path))
    assert json.loads(Path(path).read_text())["decision"] == summary["decision"]


def test_a_tracking_failure_does_not_hide_the_verdict(
        local_store: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*_, **__):
        raise MlflowException("tracking server unreachable")

    monkeypatch.setattr(runs, "start_run", down)
    summary = Readout("1", "2").summary("view", 2, 0.0)
    assert readouts.log_readout(local_store, "2", "1", summary, "undecided") is None
