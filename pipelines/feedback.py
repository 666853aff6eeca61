"""The pipeline's feedback steps: the endpoint's feedback hours join whatever source the inbox has.

``land_with_feedback`` and ``validate_with_feedback`` are what the DAG's ``land`` and
``validate`` tasks call: the configured source's batches as before, plus the closed feedback
hour files of ``<inbox>/feedback/`` read by ``pipelines.sources.feedback.FeedbackSource``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts.feedback import FOLDER
from contracts.settings import Settings
from pipelines.sources.feedback import NAME


def feedback_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"source": NAME})


def land_with_feedback(settings: Settings) -> list[Path]:
    """The DAG's landing: the configured source's batches, then the closed feedback hours."""
    from pipelines.ingest import land

    landed = land(settings)
    if settings.source != NAME:
        landed += land(feedback_settings(settings), [settings.inbox / FOLDER])
    return landed


def validate_with_feedback(settings: Settings, folders: Sequence[str]) -> list[dict[str, Any]]:
    """Validate landed folders, the feedback ones (``landing/feedback/``) with this source."""
    from pipelines.pipeline import validate_step

    ours = [f for f in folders if Path(f).parent.name == NAME]
    theirs = [f for f in folders if f not in ours]
    results = validate_step(settings, theirs) if theirs else []
    if ours:
        results += validate_step(feedback_settings(settings), ours)
    return results
