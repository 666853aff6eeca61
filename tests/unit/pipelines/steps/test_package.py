"""The Bento's requirements: uv.lock's pins of what the service needs, nothing else."""

from __future__ import annotations

import shutil

import pytest

from pipelines.steps.package import _closure, locked_requirements

LOCK = [
    {"name": "app", "version": "1", "dependencies": [{"name": "lib", "extra": ["fast"]}]},
    {"name": "lib", "version": "2", "dependencies": [{"name": "base"}],
     "optional-dependencies": {"fast": [{"name": "speedup"}], "slow": [{"name": "sloth"}]}},
    {"name": "base", "version": "3"},
    {"name": "speedup", "version": "4"},
    {"name": "sloth", "version": "5"},
    {"name": "other", "version": "6", "dependencies": [{"name": "base"}]},
]


def test_the_closure_follows_dependencies_and_the_extras_asked_for() -> None:
    assert _closure(["App"], LOCK) == {"app", "lib", "base", "speedup"}


def test_locked_requirements_pin_every_needed_package_and_leave_the_rest_out() -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH: packaging exports uv.lock with it")
    lines = locked_requirements(["tensorflow-recommenders"]).splitlines()
    names = {line.split("==")[0] for line in lines}
    assert {"tensorflow-recommenders", "tensorflow", "tf-keras", "absl-py"} <= names
    assert "apache-airflow" not in names and "pytest" not in names
    assert all("==" in line for line in lines)
