"""Choosing the candidate and judging it on the window, against the champion and the baselines.

Real MLflow runs in a local SQLite store under the test's data directory (no server). The window
test re-scores a tiny trained champion (``tests/support/champion.py``) as its own candidate: the
same model on the same shoppers, so every paired difference is exactly zero.
"""

from __future__ import annotations

import json
import math

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from contracts.settings import Settings
from pipelines.data.features import BATCHES, build_features, save_features
from pipelines.data.zones import write_json_atomic
from pipelines.steps.gate import (
    RANK_TAG,
    CandidateResult,
    Evaluation,
    evaluate_candidates,
    rank_candidates,
    register,
)
from pipelines.tracking import runs as tracking
from tests.support.champion import register_champion, shop
from tests.support.tiny import TINY


def _candidate(metrics: dict[str, float], grid_entry: dict) -> CandidateResult:
    with tracking.start_run("promote-test", "tfrs-two-stage", {"model_family": "tfrs"}) as run:
        tracking.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)})
    return CandidateResult(run.info.run_id, f"runs:/{run.info.run_id}/model", metrics,
                           grid_entry)


def test_candidates_ranked_best_first_unmeasured_last_and_tagged(local_store: Settings) -> None:
    fair = _candidate({"ndcg@10": 0.2}, {})
    best = _candidate({"ndcg_at_10": 0.5}, {"dim": 32})  # the MLflow spelling counts too
    broken = _candidate({"ndcg@10": math.nan}, {"dim": 8})
    unmeasured = _candidate({"recall@10": 0.9}, {"dim": 16})
    # As the DAG passes them: JSON from the mapped tasks, in no particular order.
    given = [fair.to_json(), broken, best.to_json(), unmeasured]

    ranked = rank_candidates(local_store, given)

    order = [best, fair, broken, unmeasured]  # NaN and missing tie last, in the order given
    assert [c.run_id for c in ranked] == [c.run_id for c in order]
    assert ranked[0].overrides == {"dim": 32}
    client = MlflowClient()
    assert [client.get_run(c.run_id).data.tags[RANK_TAG] for c in order] == ["1", "2", "3", "4"]
    recall = rank_candidates(local_store.with_values(gate_metric="recall@10"),
                             [fair, unmeasured])
    assert recall[0].run_id == unmeasured.run_id, "the gate metric comes from settings"


def test_no_candidates_is_an_error(settings: Settings) -> None:
    with pytest.raises(ValueError, match="no trained candidates"):
        rank_candidates(settings, [])


def _contains(figure: dict) -> bool:
    low, high = figure["ci95"]
    return low <= figure["value"] <= high


def test_the_champion_is_rescored_on_the_candidates_window(local_store: Settings, tmp_path
                                                           ) -> None:
    version = register_champion(local_store)
    events, items, users = shop(local_store)
    features = save_features(build_features(events, items, users,
                                            history_length=TINY.history_length,
                                            gate_share=0.5),
                             tmp_path / "features")
    write_json_atomic(tmp_path / "features" / BATCHES, [{"content_hash": "tiny"}])
    client = MlflowClient()
    run_id = client.get_model_version(local_store.model_name, version).run_id
    itself = CandidateResult(run_id, f"models:/{local_store.model_name}/{version}",
                             {"ndcg@10": 0.5})

    evaluation = evaluate_candidates(local_store, [itself], {}, features)

    evidence = evaluation.evidence
    assert evidence.champion_version == version and evidence.champion == evidence.candidate
    assert evidence.vs_champion == {"value": 0.0, "ci95": [0.0, 0.0]}, "same model, same users"
    assert evidence.baseline_name in ("popularity", "ease") and _contains(evidence.vs_baseline)
    assert evaluation.probe_user is not None
    logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/gate/evaluation.json")
    assert logged["users"] == evidence.users and set(logged["baselines"]) == {"popularity",
                                                                                "ease"}
    figures = logged["models"]["candidate"]
    assert figures["ndcg@10"]["value"] == evidence.candidate
    assert all(_contains(f) for name, f in figures.items()
               if isinstance(f, dict) and f.get("ci95") is not None)
    assert {"shoppers:new", "items:new", "items:older"} <= set(figures["slices"])
    assert "popularity_bias@10" in figures and figures["coverage@10"]["ci95"] is None
    run = client.get_run(run_id).data.metrics
    assert run["gate.champion.ndcg_at_10"] == run["gate.candidate.ndcg_at_10"]
    assert "gate/evaluation.csv" in {f.path for f in client.list_artifacts(run_id, "gate")}
    # Judged on the gate slice; the same pairs on the selection slice are on record beside.
    assert logged["window"]["start"] > logged["window"]["selection_start"]
    assert evidence.selection_users == logged["selection"]["users"] > 0
    pair = f"candidate-{evidence.baseline_name}"
    assert evidence.selection_vs_baseline == logged["selection"]["paired"][pair]["ndcg@10"]
    assert logged["selection"]["paired"]["candidate-champion"]["ndcg@10"]["value"] == 0.0
    assert run[f"gate.selection.{pair}.ndcg_at_10"] == evidence.selection_vs_baseline["value"]

    # Through XCom and back: the tiny window is below the default minimum, so refused.
    refused = register(local_store, json.loads(json.dumps(evaluation.to_json())))
    assert not refused.promoted and f"only {evidence.users} shoppers" in refused.reason
    # With the minimum met, a model no better than the champion is still not promoted.
    enough = local_store.with_values(gate_min_users=1)
    same = register(enough, Evaluation.from_json(evaluation.to_json()))
    assert not same.promoted and f"does not beat champion v{version}" in same.reason
    assert same.rule == "superiority", "a champion serves: only superiority replaces it"
    tags = client.get_model_version(local_store.model_name, same.version).tags
    assert tags["gate_noninferiority_margin"] == "0.01", "the margin comes from settings"
    assert tags["gate_split"] == evidence.split_kind == "time"
    aliases = client.get_registered_model(local_store.model_name).aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": version}, \
        "register decides; no alias moved"
