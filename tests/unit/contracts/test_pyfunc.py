"""The logged model's requirements: every distribution its code imports, at uv.lock's versions;
the code it carries: every project module that code reaches."""

from __future__ import annotations

import tomllib

from contracts.pyfunc import CODE_FILES, MODEL_CODE, MODEL_PACKAGES, pinned
from tests.conftest import REPO
from tests.support.imports import reached, source


def test_the_model_requirements_pin_the_versions_uv_lock_holds() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    locked = {f"{p['name']}=={p['version']}" for p in lock["package"] if "version" in p}
    assert set(pinned(MODEL_PACKAGES)) <= locked, "make setup re-syncs .venv to uv.lock"


def test_the_model_carries_and_pins_everything_its_code_imports() -> None:
    found = reached(f"contracts.{MODEL_CODE.stem}")
    assert {"tensorflow-recommenders"} in found.distributions  # lazy imports reached too
    unpinned = [d for d in found.distributions if not d & set(MODEL_PACKAGES)]
    assert not unpinned, f"imported by the model's code, not in its requirements: {unpinned}"
    carried = {path for package, patterns in CODE_FILES.items()
               for pattern in patterns for path in (REPO / package).glob(pattern)}
    missing = sorted(m for m in found.modules - {f"contracts.{MODEL_CODE.stem}"}
                     if source(m) not in carried)
    assert not missing, f"reached by the model's code, not in its code/ folder: {missing}"
