"""tests/conftest.py's CI rule: under ``CI=true`` a skip fails its test, elsewhere it stays a
skip with its message (a user's machine without chromium), and ``may_skip`` exempts a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MODULE = '''
import pytest

def test_needs_chromium():
    pytest.skip("chromium is not installed")

@pytest.mark.skipif(True, reason="../shared/datasets is absent")
def test_needs_shared():
    pass

@pytest.mark.may_skip
def test_exempt():
    pytest.skip("optional")

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False
'''


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_skipping.py").write_text(MODULE)
    env = os.environ | {"CI": ci, "PYTHONPATH": str(REPO)}
    # The project's conftest as a plugin, on a module outside the tests folder.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(tmp_path), "-q", "-rs", "-W", "ignore",
         str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_skips_fail_only_under_ci(tmp_path: Path) -> None:
    """One run, under CI (the other case is every run of this suite elsewhere)."""
    ci = _run(tmp_path, "true")
    assert ci.returncode == 1, ci.stdout + ci.stderr
    assert "1 failed, 1 skipped, 1 xfailed, 1 error" in ci.stdout  # the skipif fails at setup
    assert "skipped under CI=true, where nothing may be: Skipped: chromium is not installed" \
        in ci.stdout
    assert "SKIPPED [1]" in ci.stdout and "optional" in ci.stdout  # may_skip still skips
