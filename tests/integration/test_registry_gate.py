"""The registry gate and tracking plumbing against a real ``mlflow server``.

Each test uses its own registered model name and data set, so tests share one server without
seeing each other's champions. The gate's evidence is built as the window evaluation builds it:
per-shopper values (here synthetic, with the given means) bootstrapped by
``pipelines.evaluation.bootstrap``.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from contracts import registry
from contracts.registry import champion_uri
from contracts.settings import PROJECT_ROOT, Settings
from pipelines.evaluation.bootstrap import Resamples
from pipelines.tracking import runs as tracking
from pipelines.tracking.register import (
    GateDecision,
    GateEvidence,
    move_alias,
    register_and_gate,
    register_version,
)

METRIC = "ndcg@10"
BASELINE = 0.10
USERS = 200


class Constant(PythonModel):
    """A model small enough to log in a second: it predicts its own score for every row."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, context, model_input: list[str], params=None) -> list[float]:
        return [self.value] * len(model_input)


@pytest.fixture(autouse=True)
def tracking_uri(
    mlflow_server: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[str]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("SHOPREC_TRACKING_URI", raising=False)
    uri = registry.configure(Settings(data_dir=tmp_path / "data"))
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    # set_registry_uri exported MLFLOW_REGISTRY_URI and None does not unset it: without this it
    # leaks into later tests' subprocesses (monkeypatch restores a value that was there before).
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


@pytest.fixture
def name() -> str:
    return f"shoprec-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def dataset() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def train(dataset: str, value: float, family: str = "tfrs") -> str:
    """Log a finished "training" run with its metric and model; return the model URI."""
    with tracking.start_run(dataset, f"{family}-{value}", {"model_family": family}):
        assert tracking.log_metrics({METRIC: value}) == {"ndcg_at_10": value}
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Constant(value), pip_requirements=["mlflow"]
        )
    return info.model_uri


def _shoppers(mean: float, common: np.ndarray, seed: int) -> np.ndarray:
    """Per-shopper values with exactly ``mean``: a spread all models share (which shoppers are
    easy) plus a little of the model's own."""
    own = np.random.default_rng(seed).normal(0.0, 0.01, common.size)
    values = common + own
    return values - values.mean() + mean


def evidence(name: str, candidate: float, baseline: float = BASELINE, users: int = USERS,
             baseline_name: str = "ease") -> GateEvidence:
    """What the window evaluation would hand the gate: the registry's current champion
    re-scored at its own recorded value, paired with the candidate on the same shoppers."""
    common = np.random.default_rng(1).normal(0.0, 0.2, users)
    resamples = Resamples(users)
    ours = _shoppers(candidate, common, 2)
    champion_version = registry.aliases(MlflowClient(), name).get("champion")
    champion = vs_champion = None
    if champion_version is not None:
        champion = float(version_tags(name, champion_version)["gate_candidate"])
        vs_champion = resamples.paired(ours, _shoppers(champion, common, 3)).to_json()
    return GateEvidence(
        metric=METRIC, users=users, candidate=candidate, baseline_name=baseline_name,
        baseline=baseline, floor="λ=100",
        vs_baseline=resamples.paired(ours, _shoppers(baseline, common, 4)).to_json(),
        champion_version=champion_version and str(champion_version), champion=champion,
        vs_champion=vs_champion)


def gate(dataset: str, name: str, value: float, margin: float = 0.0, min_users: int = 50,
         noninferiority_margin: float = 0.0, **kwargs) -> GateDecision:
    return register_and_gate(train(dataset, value), evidence(name, value, **kwargs),
                             margin=margin, min_users=min_users,
                             noninferiority_margin=noninferiority_margin, name=name)


def version_tags(name: str, version: str) -> dict[str, str]:
    return MlflowClient().get_model_version(name, version).tags


def champion_version(name: str) -> str:
    return MlflowClient().get_model_version_by_alias(name, "champion").version


def test_configure_points_tracking_and_registry_at_the_server(
    tracking_uri: str, mlflow_server: str  # noqa: F811
) -> None:
    assert tracking_uri == mlflow_server
    assert mlflow.get_tracking_uri() == mlflow_server
    assert mlflow.get_registry_uri() == mlflow_server


def test_configure_creates_the_sqlite_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    data_dir = tmp_path / "fresh" / "data"
    uri = registry.configure(Settings(data_dir=data_dir))
    assert uri == f"sqlite:///{data_dir / 'mlflow.db'}"
    assert data_dir.is_dir()


def test_first_model_becomes_champion(name: str, dataset: str) -> None:
    assert champion_uri(name) is None
    decision = gate(dataset, name, 0.30)
    assert decision.promoted and decision.alias == "champion"
    assert decision.champion is None and decision.baseline == pytest.approx(0.10)
    assert champion_uri(name) == f"models:/{name}@champion"
    tags = version_tags(name, decision.version)
    assert tags["gate_decision"] == "promoted" and tags["gate_rule"] == "non_inferiority"
    assert decision.rule == "non_inferiority"
    assert tags["gate_reason"].startswith("first champion by non-inferiority: ndcg@10 0.3 is no "
                                          "worse than the best baseline, ease (λ=100), 0.1 on "
                                          "the same 200 shoppers")
    assert " above 0; " in tags["gate_reason"], "default margin: it must beat the floor"
    assert tags["gate_reason"].endswith("better than it too: lower bound above margin 0, "
                                        "superiority's bar"), "it cleared both rules: it says so"
    assert tags["gate_users"] == "200" and tags["gate_baseline_name"] == "ease"
    assert tags["gate_vs_baseline"].startswith("paired difference +0.2, 95 % CI [")
    model = mlflow.pyfunc.load_model(champion_uri(name))
    assert model.predict(["a", "b"]) == [0.30, 0.30]


def test_better_model_replaces_champion(name: str, dataset: str) -> None:
    first = gate(dataset, name, 0.300)
    second = gate(dataset, name, 0.310, margin=0.002)
    assert second.promoted and second.alias == "champion" and second.rule == "superiority"
    assert second.reason.endswith("above margin 0.002: champion replaced by superiority")
    assert second.champion == pytest.approx(0.300) and second.champion_version == first.version
    assert MlflowClient().get_model_version(name, first.version).run_id  # lineage kept
    assert champion_version(name) == second.version
    assert version_tags(name, first.version)["superseded_by"] == second.version
    tags = version_tags(name, second.version)
    assert tags["gate_champion"] == "0.3" and tags["gate_candidate"] == "0.31"
    assert tags["gate_rule"] == "superiority"
    assert tags["gate_baseline"] == "0.1" and tags["gate_champion_version"] == first.version
    low, high = (float(v) for v in tags["gate_vs_champion"].split("[")[1].strip("]").split(","))
    assert 0.002 < low < 0.01 < high, "the paired interval brackets the true difference"


def test_worse_model_becomes_challenger(name: str, dataset: str) -> None:
    first = gate(dataset, name, 0.305)
    worse = gate(dataset, name, 0.301, margin=0.002)
    assert not worse.promoted and worse.alias == "challenger"
    assert worse.reason.startswith(
        f"ndcg@10 0.301 does not beat champion v{first.version} (0.305) on the same 200 "
        "shoppers: paired difference -0.004, 95 % CI [")
    assert worse.reason.endswith("lower bound not above margin 0.002")
    tags = version_tags(name, worse.version)
    assert tags["gate_reason"] == worse.reason and tags["gate_decision"] == "rejected"
    within_margin = gate(dataset, name, 0.306, margin=0.002)
    assert not within_margin.promoted, "better by less than the margin: not enough"
    assert champion_version(name) == first.version
    aliases = MlflowClient().get_registered_model(name).aliases
    assert aliases == {"champion": first.version, "challenger": within_margin.version}
    assert "superseded_by" not in version_tags(name, first.version)


def test_a_candidate_worse_than_ease_is_never_champion(name: str, dataset: str) -> None:
    below = gate(dataset, name, 0.05)
    assert not below.promoted and champion_uri(name) is None
    assert below.reason.startswith("ndcg@10 0.05 is not shown to be no worse than the best "
                                   "baseline, ease (λ=100), 0.1 on the same 200 shoppers")
    first = gate(dataset, name, 0.20)
    assert first.promoted
    beats_champion_only = gate(dataset, name, 0.25, baseline=0.30)
    assert not beats_champion_only.promoted and beats_champion_only.alias == "challenger"
    assert "does not beat the best baseline, ease (λ=100), 0.3" in beats_champion_only.reason
    assert champion_version(name) == first.version


def _first(name: str, dataset: str, vs_baseline: dict, margin: float = 0.01,
           split_kind: str = "time") -> GateDecision:
    """A first version whose paired difference against the floor is ``vs_baseline``."""
    given = evidence(name, 0.12)
    given.vs_baseline, given.split_kind = vs_baseline, split_kind
    return register_and_gate(train(dataset, 0.12), given, min_users=50,
                             noninferiority_margin=margin, name=name)


def test_a_first_version_no_worse_than_the_floor_becomes_champion(
    name: str, dataset: str
) -> None:
    # The 14-day shop: +0.020 over EASE, 95 % CI [-0.005, +0.046]: not superior.
    decision = _first(name, dataset, {"value": 0.020, "ci95": [-0.005, 0.046]})
    assert decision.promoted and decision.rule == "non_inferiority"
    assert champion_version(name) == decision.version
    assert decision.reason == (
        "first champion by non-inferiority: ndcg@10 0.12 is no worse than the best baseline, "
        "ease (λ=100), 0.1 on the same 200 shoppers (paired difference +0.02, 95 % CI "
        "[-0.005, 0.046]), lower bound -0.005 above -0.01")
    tags = version_tags(name, decision.version)
    assert tags["gate_rule"] == "non_inferiority" and tags["gate_noninferiority_margin"] == "0.01"


def test_a_first_version_clearly_worse_than_the_floor_stays_challenger(
    name: str, dataset: str
) -> None:
    worse = _first(name, dataset, {"value": -0.004, "ci95": [-0.012, 0.003]})
    assert not worse.promoted and worse.alias == "challenger" and champion_uri(name) is None
    assert worse.rule == "non_inferiority"
    assert worse.reason.endswith("lower bound not above -0.01 (first version, non-inferiority "
                                 "margin 0.01)")
    at_bound = _first(name, dataset, {"value": 0.0, "ci95": [-0.01, 0.01]},
                      split_kind="per_shopper")
    assert not at_bound.promoted, "the lower bound must be strictly above minus the margin"
    assert "on the same 200 shoppers (each one's latest events held out)" in at_bound.reason
    assert version_tags(name, at_bound.version)["gate_split"] == "per_shopper"


def test_nan_bounds_clear_nothing(name: str, dataset: str) -> None:
    nan = float("nan")
    first = _first(name, dataset, {"value": nan, "ci95": [nan, nan]}, margin=1.0)
    assert not first.promoted and champion_uri(name) is None
    assert "95 % CI [nan, nan]" in first.reason
    champion = gate(dataset, name, 0.30)
    blind = evidence(name, 0.90)
    blind.vs_champion = {"value": nan, "ci95": [nan, nan]}
    refused = register_and_gate(train(dataset, 0.90), blind, noninferiority_margin=1.0,
                                name=name)
    assert not refused.promoted and refused.rule == "superiority"
    assert champion_version(name) == champion.version


def test_a_champion_is_replaced_only_by_a_superior_version(name: str, dataset: str) -> None:
    first = gate(dataset, name, 0.300, noninferiority_margin=0.01)
    assert first.promoted
    level = gate(dataset, name, 0.299, noninferiority_margin=0.01)
    low = float(level.reason.split("CI [")[1].split(",")[0])
    assert -0.01 < low < 0, "non-inferior to the champion, not superior"
    assert not level.promoted and level.rule == "superiority"
    assert level.reason.startswith(f"ndcg@10 0.299 does not beat champion v{first.version}")
    assert champion_version(name) == first.version


def test_too_few_shoppers_are_refused_with_the_reason(name: str, dataset: str) -> None:
    few = gate(dataset, name, 0.90, users=30, min_users=50)
    assert not few.promoted and few.alias == "challenger" and champion_uri(name) is None
    assert few.reason == ("only 30 shoppers in the evaluation window, fewer than the minimum 50 "
                          "(gate_min_users): too few to tell models apart, not promoted")
    tags = version_tags(name, few.version)
    assert tags["gate_users"] == "30" and tags["gate_min_users"] == "50"
    at_minimum = gate(dataset, name, 0.90, users=50, min_users=50)
    assert at_minimum.promoted, "the minimum itself is enough"


def test_the_decision_is_written_before_any_alias_moves(name: str, dataset: str) -> None:
    first = gate(dataset, name, 0.30)
    decided = register_version(train(dataset, 0.40), evidence(name, 0.40), name=name)
    assert decided.promoted and decided.alias == "champion"
    assert version_tags(name, decided.version)["gate_decision"] == "promoted"
    assert champion_version(name) == first.version, "registered and decided, nothing moved"
    move_alias(decided, name)
    assert champion_version(name) == decided.version


def test_a_champion_that_moved_since_the_evaluation_is_left_alone(
    name: str, dataset: str
) -> None:
    first = gate(dataset, name, 0.30)
    stale = evidence(name, 0.50)  # measured against v1 ...
    second = gate(dataset, name, 0.40)  # ... then another gate promoted v2
    late = register_version(train(dataset, 0.50), stale, name=name)
    assert not late.promoted and late.reason.startswith(f"the champion is v{second.version} now")
    decided = register_version(train(dataset, 0.60), evidence(name, 0.60), name=name)
    gate(dataset, name, 0.70)  # moves the champion between the decision and the alias
    with pytest.raises(RuntimeError, match="the champion moved"):
        move_alias(decided, name)
    assert champion_version(name) not in (first.version, decided.version)


def test_a_champion_that_could_not_be_rescored_blocks_promotion(
    name: str, dataset: str
) -> None:
    first = gate(dataset, name, 0.30)
    blind = evidence(name, 0.90)
    blind.vs_champion, blind.note = None, "FileNotFoundError: no bundle folder"
    refused = register_and_gate(train(dataset, 0.90), blind, name=name)
    assert not refused.promoted and champion_version(name) == first.version
    assert f"champion v{first.version} could not be re-scored on this window " \
           "(FileNotFoundError: no bundle folder)" in refused.reason


def test_failed_registration_leaves_the_champion_alone(
    name: str, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = gate(dataset, name, 0.30)
    # The server answers 500 for an unknown model id and the client would retry for minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(ValueError, match="margin must be non-negative"):
        register_and_gate(train(dataset, 0.9), evidence(name, 0.9), margin=-0.1, name=name)
    with pytest.raises(ValueError, match="noninferiority_margin must be non-negative"):
        register_and_gate(train(dataset, 0.9), evidence(name, 0.9), noninferiority_margin=-0.1,
                          name=name)
    with pytest.raises(Exception):  # noqa: B017  (whatever MLflow raises for a missing model)
        register_and_gate("models:/m-doesnotexist", evidence(name, 0.9), name=name)
    assert champion_version(name) == first.version
    assert "challenger" not in MlflowClient().get_registered_model(name).aliases


def test_one_experiment_per_dataset_with_standard_tags(dataset: str) -> None:
    experiment_id = tracking.experiment_for(dataset)
    assert tracking.experiment_for(dataset) == experiment_id
    assert mlflow.get_experiment(experiment_id).name == f"shoprec-{dataset}"
    assert tracking.experiment_for(f"{dataset}-other") != experiment_id
    with tracking.start_run(dataset, "baseline", {"model_family": "popularity", "data_hash": "h"}):
        run_id = mlflow.active_run().info.run_id
    run = mlflow.get_run(run_id)
    assert run.info.experiment_id == experiment_id and run.info.run_name == "baseline"
    commit = run.data.tags["git_commit"]
    if commit != "unknown":  # HEAD may move while tests run: check it is a commit of this repo
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
        known = subprocess.run(
            ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=PROJECT_ROOT, check=False
        )
        assert known.returncode == 0
    assert run.data.tags["shoprec.dataset"] == dataset
    assert run.data.tags["model_family"] == "popularity" and run.data.tags["data_hash"] == "h"


def test_lineage_is_logged_as_a_training_input(dataset: str) -> None:
    batches = [
        {"batch": "b2", "content_hash": "ff00", "batch_date": "2026-01-02", "status": "accepted",
         "validation_ids": ["v3"]},
        {"batch": "b1", "content_hash": "aa11", "batch_date": "2026-01-01", "status": "accepted",
         "validation_ids": ["v1", "v2"]},
    ]
    expected = tracking.data_hash(["aa11", "ff00"])
    assert tracking.data_hash(["ff00", "aa11"]) == expected
    with tracking.start_run(dataset, "lineage", {"data_hash": expected}):
        run_id = mlflow.active_run().info.run_id
        assert tracking.log_lineage(batches, "events", expected) == expected
        with pytest.raises(ValueError, match="does not match"):
            tracking.log_lineage(batches, "events", "0" * 64)
    (logged,) = mlflow.get_run(run_id).inputs.dataset_inputs
    assert logged.dataset.name == "events" and logged.dataset.digest == expected[:36]
    input_tags = {tag.key: tag.value for tag in logged.tags}
    assert input_tags["mlflow.data.context"] == "training"
    assert input_tags["data_hash"] == expected
    frame = tracking.lineage_frame(batches)
    assert frame["batch"].tolist() == ["b1", "b2"]
    assert frame["validation_ids"].tolist() == ["v1,v2", "v3"]


def test_params_are_flattened_with_dotted_keys(dataset: str) -> None:
    config = {
        "model": {"embedding_dim": 32, "towers": {"query": [64, 32]}},
        "learning_rate": 0.1,
        "gate": {"metric@k": "ndcg@10"},
        "note": "x" * 7000,
        "many": {f"p{i}": i for i in range(120)},
    }
    with tracking.start_run(dataset, "params", {}):
        run_id = mlflow.active_run().info.run_id
        tracking.log_params_flat(config)
    params = mlflow.get_run(run_id).data.params
    assert params["model.embedding_dim"] == "32"
    assert params["model.towers.query"] == "[64, 32]"
    assert params["learning_rate"] == "0.1"
    assert params["gate.metric_at_k"] == "ndcg@10"
    assert len(params["note"]) == 6000
    assert params["many.p119"] == "119" and len(params) == 5 + 120
