"""``shoprec train``: the pipeline DAG's training steps, run in one process.

features -> baselines -> one candidate per ``settings.train_grid`` entry (over
``settings.train_config``) -> evaluate the candidates -> promote the best (when registering).
The same step functions and the same settings as the DAG, so the CLI and the DAG cannot train
differently; each step's module says what it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.progress import Progress, report
from contracts.settings import Settings
from models import distribute
from models.train_config import TrainConfig
from pipelines.steps.baselines import train_baselines
from pipelines.steps.candidate import train_candidate
from pipelines.steps.features import build_features_step
from pipelines.steps.gate import evaluate_candidates, promote
from pipelines.tracking.register import GateDecision


@dataclass
class TrainResult:
    """The best candidate of the run, the baselines' metrics, the evidence the gate weighed (on
    the gate slice, with the selection slice's figure beside) and its decision."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    train_seconds: float
    gate: GateDecision | None
    evidence: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "gate"}
        out["gate"] = self.gate.__dict__ if self.gate else None
        return out


def train(
    settings: Settings,
    data_dir: Path | None = None,
    config: TrainConfig | None = None,
    dataset: str | None = None,
    register: bool = True,
    progress: Progress | None = None,
) -> TrainResult:
    """Train on the curated data of ``data_dir`` (default ``settings.data_dir``) as the DAG does.

    ``config``, when given, replaces ``settings.train_config`` as the base every grid entry
    overrides; ``dataset`` names the MLflow experiment (default ``settings.dataset``). Without
    ``register`` every run is still logged and the candidates ranked, but nothing is registered.
    ``progress`` counts the steps (features, baselines, each candidate, the gate) and each
    candidate's epochs.
    """
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["data_dir"] = Path(data_dir).resolve()
    if dataset is not None:
        update["dataset"] = dataset
    if config is not None:
        update["train_config"] = config.to_dict()
    settings = settings.with_values(**update)
    strategy = distribute.strategy(settings.distribute)  # first: TF sets up collectives once
    if not distribute.is_chief(strategy):
        return _follow_chief(settings, strategy)
    steps = len(settings.train_grid) + 3
    features_uri = build_features_step(settings)
    report(progress, "train: steps", 1, steps)
    distribute.barrier(strategy)  # other workers then read the feature set the chief built
    baselines = train_baselines(settings, features_uri)
    report(progress, "train: steps", 2, steps)
    candidates = []
    for overrides in settings.train_grid:
        label = f"candidate {len(candidates) + 1}/{len(settings.train_grid)}"
        candidates.append(train_candidate(settings, features_uri, overrides, baselines,
                                          progress, label))
        report(progress, "train: steps", 2 + len(candidates), steps)
    evaluation = evaluate_candidates(settings, candidates, baselines)
    gate = promote(settings, evaluation) if register else None
    report(progress, "train: steps", steps, steps)
    best = evaluation.best
    return TrainResult(best.run_id, best.model_uri, best.metrics, baselines,
                       best.metrics["train_seconds"], gate, evaluation.evidence.to_json())


def _follow_chief(settings: Settings, strategy) -> TrainResult:
    """Another worker of a multi-worker run: it trains every candidate in step with the chief,
    which alone logs, evaluates and gates; the result names no run."""
    distribute.barrier(strategy)  # the chief has built the feature set
    features_uri = build_features_step(settings)
    seconds = sum(train_candidate(settings, features_uri, overrides).metrics["train_seconds"]
                  for overrides in settings.train_grid)
    return TrainResult("", "", {}, {}, seconds, None)
