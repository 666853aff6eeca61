"""The logged model's requirements are the locked versions, and the code it carries exists."""

from __future__ import annotations

import tomllib

from contracts.pyfunc import CODE_FILES, MODEL_PACKAGES, pinned
from tests.conftest import REPO


def test_the_model_requirements_pin_the_versions_uv_lock_holds() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    locked = {f"{p['name']}=={p['version']}" for p in lock["package"] if "version" in p}
    assert set(pinned(MODEL_PACKAGES)) <= locked, "make setup re-syncs .venv to uv.lock"


def test_every_module_the_model_carries_exists() -> None:
    for package, patterns in CODE_FILES.items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"{package}/{pattern}"
