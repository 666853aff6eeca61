"""What ``shoprec`` shows on stderr while it works: rich progress bars on a terminal, and the
libraries' chatter (TensorFlow's C++ and Python logs, MLflow's) kept below ERROR unless ``-v``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from contracts.progress import Progress


def quiet_libraries(verbose: bool) -> None:
    """TensorFlow's INFO and WARNING lines ("Gradients do not exist" for the frozen recency
    weights...) and MLflow's INFO lines and download bars say nothing a user acts on; ``-v``
    keeps them. Must run before TensorFlow's first import (its C++ level is read then); an
    explicit TF_CPP_MIN_LOG_LEVEL or MLFLOW_LOGGING_LEVEL wins. What TensorFlow's C++ logs while
    it loads, before absl's logging is initialised, ignores every level (abseil-cpp#1957)."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++: errors only
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # tf.get_logger()
    try:
        from absl import logging as absl_logging
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to quiet
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def wants_bars(json_output: bool, streams: tuple[TextIO, ...] = ()) -> bool:
    """Bars only for a person watching: not with ``--json`` (a program reads stdout) and not
    when stdout or stderr is a file or a pipe (a log)."""
    streams = streams or (sys.stdout, sys.stderr)
    return not json_output and all(s.isatty() for s in streams)


@contextmanager
def progress_bars(enabled: bool, file: TextIO | None = None) -> Iterator[Progress | None]:
    """A ``Progress`` that draws one bar per task on stderr (``file``), or None when off."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bars

    console = Console(file=file or sys.stderr)
    # What the work prints meanwhile (Keras' epoch lines) goes above the bars, on stderr.
    with Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
              TimeElapsedColumn(), console=console) as bars:
        tasks: dict[str, int] = {}

        def update(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bars.add_task(task, total=total)
            bars.update(tasks[task], completed=done, total=total)

        yield update
