"""The ingest stage: land the inbox's new batches and the endpoint's feedback hours, validate
them, decide whether training follows, and report what was quarantined.

``land_with_feedback`` and ``validate_with_feedback`` are what the ingest DAG's ``land`` and
``validate`` tasks call: the configured source's batches, plus the closed feedback hour files
of ``<inbox>/feedback/`` read by ``pipelines.data.sources.feedback.FeedbackSource``. The
decisions between them are plain, testable functions too: what each landed batch became,
whether the run trains, and what a quarantined batch is reported as."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contracts.feedback import FOLDER
from contracts.settings import Settings
from contracts.storage import location
from pipelines.data.sources.feedback import NAME

log = logging.getLogger(__name__)


@dataclass
class Route:
    """Where a run goes after validation, and why, in words the Airflow UI shows."""

    train: bool
    quarantined: list[dict[str, Any]]  # batch, reason, report path
    accepted: list[str]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def validate_step(settings: Settings, folders: Sequence[str]) -> list[dict[str, Any]]:
    """Validate landed batch folders; per batch, only its id, status, reason and report path."""
    from pipelines.data.ingest_lock import data_dir_lock
    from pipelines.data.ingestor import Ingestor

    if not folders:
        return []
    with data_dir_lock(settings, what="validate"):  # the manifests are read under the lock
        results = Ingestor(settings).ingest([location(f) for f in folders], settings.source)
    return [{"batch": r.batch, "status": r.status, "reason": r.reason, "report": r.report}
            for r in results]


def route(batches: Sequence[Mapping[str, Any]], force_train: bool = False) -> Route:
    """Train when this run accepted new data (or when forced); report quarantined batches.

    Quarantined batches never reach the curated zone, so training on the accepted ones is safe;
    a run that accepted nothing new has nothing to train on and stops cleanly.
    """
    accepted = [b["batch"] for b in batches if b["status"] == "accepted"]
    quarantined = [{k: b.get(k) for k in ("batch", "reason", "report")}
                   for b in batches if b["status"] == "quarantined"]
    train = bool(accepted) or force_train
    if accepted:
        reason = f"{len(accepted)} new batch(es) accepted: training"
    elif force_train:
        reason = "no new batches, but force_train is set: training on the curated data"
    else:
        reason = "no new batches accepted: nothing to train"
    if quarantined:
        reason += f"; {len(quarantined)} batch(es) quarantined and left out"
    return Route(train, quarantined, accepted, reason)


def report_quarantined(batches: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Log each quarantined batch with its reason and summary report; return them for the UI."""
    quarantined = route(batches).quarantined
    for batch in quarantined:
        log.warning("quarantined %s: %s (report: %s)", batch["batch"], batch["reason"],
                    batch["report"])
    return quarantined


def feedback_settings(settings: Settings) -> Settings:
    return settings.with_values(source=NAME)


def land_with_feedback(settings: Settings) -> list[Path]:
    """The DAG's landing: the configured source's batches, then the closed feedback hours."""
    from pipelines.data.landing import land

    landed = land(settings)
    if settings.source != NAME:
        landed += land(feedback_settings(settings), [settings.inbox / FOLDER])
    return landed


def validate_with_feedback(settings: Settings, folders: Sequence[str]) -> list[dict[str, Any]]:
    """Validate landed folders, the feedback ones (``landing/feedback/``) with this source."""
    ours = [f for f in folders if Path(f).parent.name == NAME]
    theirs = [f for f in folders if f not in ours]
    results = validate_step(settings, theirs) if theirs else []
    if ours:
        results += validate_step(feedback_settings(settings), ours)
    return results
