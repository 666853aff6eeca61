"""What a newcomer sees: every option's help with its default, bars only on a terminal, and
TensorFlow's and MLflow's chatter kept out of the way unless ``-v``."""

from __future__ import annotations

import argparse
import io
import logging
import os
from collections.abc import Iterator

import pytest

from pipelines.cli.parser import build_parser
from pipelines.cli.progress import progress_bars, quiet_libraries, wants_bars


def _options(parser: argparse.ArgumentParser, name: str = "shoprec"
             ) -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    """Every argument of the parser and, recursively, of each subcommand's parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _options(sub, f"{name} {command}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield name, parser, action


def test_every_option_has_help_and_shows_its_default() -> None:
    seen = 0
    for name, parser, action in _options(build_parser()):
        seen += 1
        label = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help.strip(), f"{label} has no help"
        shown = parser._get_formatter()._expand_help(action)
        if not (action.default is None or action.default is False or action.default == []):
            assert f"(default {action.default})" in shown, f"{label}: {shown!r}"
        else:
            assert "(default None)" not in shown and "(default False)" not in shown, label
    assert seen > 50, "walked every subcommand"


def test_bars_only_for_a_person_at_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, log = Tty(), io.StringIO()
    assert wants_bars(False, (tty, tty))
    assert not wants_bars(True, (tty, tty)), "--json: a program reads stdout"
    assert not wants_bars(False, (log, tty)) and not wants_bars(False, (tty, log))
    with progress_bars(False) as off:
        assert off is None


def test_bars_draw_each_task_on_the_given_stream() -> None:
    out = io.StringIO()
    with progress_bars(True, out) as progress:
        assert progress is not None
        for done in range(1, 4):
            progress("ingest batches", done, 3)
        progress("candidate 1/1: retrieval epochs", 2, 8)
    text = out.getvalue()
    assert "ingest batches" in text and "3/3" in text
    assert "candidate 1/1: retrieval epochs" in text and "2/8" in text


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL",
                 "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.delenv(name, raising=False)
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    yield
    tf_logger.setLevel(level)


def test_tensorflow_and_mlflow_below_error_unless_verbose(clean_env: None,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from absl import logging as absl_logging

    monkeypatch.setattr(absl_logging, "set_verbosity", lambda v: calls.append(v))
    calls: list[int] = []
    quiet_libraries(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and calls == []

    quiet_libraries(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    assert logging.getLogger("tensorflow").level == logging.ERROR
    assert calls == [absl_logging.ERROR]


def test_an_explicit_tensorflow_log_level_wins(clean_env: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet_libraries(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_ingest_counts_its_batches_on_the_bars(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    from contracts.settings import get_settings
    from pipelines.cli import commands, main
    from tests.support.shopfiles import event_rows, write_catalogue, write_events

    shop = write_catalogue(tmp_path / "shop")
    write_events(shop / "events", "2026-01-01", event_rows("2026-01-01"))
    drawn = io.StringIO()

    @contextmanager
    def bars_on_a_terminal(enabled: bool):
        with progress_bars(enabled, drawn) as progress:
            yield progress

    monkeypatch.setattr(commands, "wants_bars", lambda json_output: not json_output)
    monkeypatch.setattr(commands, "progress_bars", bars_on_a_terminal)
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", "test-key")
    get_settings.cache_clear()
    try:
        assert main(["ingest", str(shop), "--source", "synthetic", "--data-dir",
                     str(tmp_path / "data")]) == 0
        assert "ingest batches" in drawn.getvalue() and "3/3" in drawn.getvalue()
        before = len(drawn.getvalue())
        assert main(["ingest", str(shop), "--source", "synthetic", "--data-dir",
                     str(tmp_path / "data"), "--json"]) == 0
        assert len(drawn.getvalue()) == before, "no bars with --json"
    finally:
        get_settings.cache_clear()
