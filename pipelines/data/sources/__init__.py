"""Source adapters, looked up by the name the CLI and DAGs use.

Every source but ``feedback`` leaves the ``feedback/`` folder of a folder it is given alone: the
endpoint's feedback hour files there are read by the feedback source, whatever the inbox's own
source is (``pipelines.data.sources.feedback``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from contracts.feedback import FOLDER as FEEDBACK_FOLDER
from pipelines.data.sources.base import BatchInput, Source, UsageError


def _registry() -> dict[str, type[Source]]:
    from pipelines.data.sources.csv_mapped import MappedCsvSource
    from pipelines.data.sources.feedback import FeedbackSource
    from pipelines.data.sources.movielens import MovieLensSource
    from pipelines.data.sources.online_retail import OnlineRetailSource
    from pipelines.data.sources.synthetic import SyntheticSource

    return {
        cls.name: cls
        for cls in (SyntheticSource, OnlineRetailSource, MovieLensSource, MappedCsvSource,
                    FeedbackSource)
    }


SOURCE_NAMES = ("synthetic", "online-retail", "movielens-100k", "csv", "feedback")


def get_source(name: str, mapping: str | None = None) -> Source:
    """The adapter called ``name``; ``mapping`` is the YAML column mapping the csv source needs."""
    registry = _registry()
    if name not in registry:
        raise UsageError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    cls = registry[name]
    if name == "feedback":
        if mapping is not None:
            raise UsageError(f"--mapping applies to --source csv only, not {name}")
        return cls()
    view = _leaving_feedback(cls)
    if name == "csv":
        if mapping is None:
            raise UsageError("--source csv needs --mapping FILE (a YAML column mapping)")
        return view.from_file(mapping)  # type: ignore[attr-defined]
    if mapping is not None:
        raise UsageError(f"--mapping applies to --source csv only, not {name}")
    return view()


@cache
def _leaving_feedback(cls: type[Source]) -> type[Source]:
    """``cls`` whose ``discover`` leaves out the ``feedback/`` folder of each folder given."""

    class View(cls):  # type: ignore[valid-type,misc]
        def discover(self, paths: Sequence[Path]) -> list[BatchInput]:
            return without_feedback(paths, super().discover(paths))

    View.__name__ = View.__qualname__ = cls.__name__
    return View


def without_feedback(paths: Sequence[Path], batches: list[BatchInput]) -> list[BatchInput]:
    """``batches`` less those with a file under the ``feedback/`` folder of a folder in
    ``paths``."""
    skipped = [(p / FEEDBACK_FOLDER).resolve() for p in paths if p.is_dir()]
    return [b for b in batches
            if not any(folder in f.resolve().parents for f in b.files for folder in skipped)]
