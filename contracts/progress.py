"""How far a long step is, as an optional callback: the step reports, its caller shows it.

Steps stay plain functions (the DAGs pass nothing); ``shoprec`` passes rich bars on a terminal
(``pipelines.cli.progress``), the benchmarks their own.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, task: str, done: int, total: int) -> None:
        """``task`` (one line, such as "ingest batches") has done ``done`` of ``total`` units."""


def report(progress: Progress | None, task: str, done: int, total: int) -> None:
    """Call ``progress`` if there is one: what every step does at each unit."""
    if progress is not None:
        progress(task, done, total)
