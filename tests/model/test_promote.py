"""Ranking the candidates: best first by the gate metric, unmeasured ones last, ranks tagged.

Real MLflow runs in a local SQLite store under the test's data directory (no server).
"""

from __future__ import annotations

import json
import math

import pytest
from mlflow.tracking import MlflowClient

from contracts.settings import Settings
from pipelines import tracking
from pipelines.promote import RANK_TAG, CandidateResult, evaluate_candidates

POPULARITY = {"ndcg@10": 0.05, "recall@10": 0.1}


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

    evaluation = evaluate_candidates(local_store, given, {"popularity": POPULARITY})

    order = [best, fair, broken, unmeasured]  # NaN and missing tie last, in the order given
    assert evaluation.best.run_id == best.run_id and evaluation.best.overrides == {"dim": 32}
    assert evaluation.metric == "ndcg@10" and evaluation.candidate == 0.5
    assert [r["run_id"] for r in evaluation.ranking] == [c.run_id for c in order]
    assert [r["value"] for r in evaluation.ranking] == [0.5, 0.2, None, None]
    assert (evaluation.champion_version, evaluation.champion) == (None, None), "no champion yet"
    assert evaluation.baseline_metrics == POPULARITY
    client = MlflowClient()
    assert [client.get_run(c.run_id).data.tags[RANK_TAG] for c in order] == ["1", "2", "3", "4"]
    json.dumps(evaluation.to_json(), allow_nan=False)  # what the DAG passes on: valid JSON


def test_the_gate_metric_comes_from_settings(local_store: Settings) -> None:
    a = _candidate({"ndcg@10": 0.5, "recall@10": 0.1}, {})
    b = _candidate({"ndcg@10": 0.2, "recall@10": 0.3}, {"dim": 32})
    settings = local_store.model_copy(update={"gate_metric": "recall@10"})

    evaluation = evaluate_candidates(settings, [a, b], {"popularity": POPULARITY})

    assert evaluation.best.run_id == b.run_id and evaluation.candidate == 0.3


def test_no_candidates_is_an_error(settings: Settings) -> None:
    with pytest.raises(ValueError, match="no trained candidates"):
        evaluate_candidates(settings, [], {"popularity": POPULARITY})
