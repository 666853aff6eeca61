"""Which model to serve, loading it, and swapping it atomically while requests keep flowing.

The served model is ``settings.model_uri`` when pinned (an MLflow URI, or ``bentoml:<tag>`` for a
model in the BentoML store, as a built Bento pins it), else the registry's champion. Requests take
``holder.engine`` once and use that object to the end, so a reload never changes a model under a
request in flight: the old engine lives until its last request drops it.

Models load from their bundle files (JSON metadata, NumPy and Parquet tables, weights) with
``contracts.bundle.load_bundle``: nothing fetched from the registry is ever unpickled, so moving
``@champion`` cannot run code in the endpoint. What clients read when the endpoint cannot answer
is a generic reason; the details (URIs, exception text) go to the server log only.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from contracts import registry
from contracts.bento_store import BENTOML_SCHEME, INFO_KEY, MLFLOW_DIR
from contracts.model_info import ModelInfo
from contracts.settings import Settings

log = logging.getLogger(__name__)

REGISTRY_DOWN = "the model registry could not be read; details in the server log"
LOAD_FAILED = "the served model could not be loaded; details in the server log"
NOT_IN_STORE = "the pinned model is not in the BentoML store; details in the server log"


class Unavailable(RuntimeError):
    """The endpoint cannot answer now (503): it says why, and keeps serving what it had."""


class NoModel(Unavailable):
    """Nothing to serve: no champion in the registry (or the pinned model is missing)."""


def served_uri(settings: Settings) -> str | None:
    if settings.model_uri:
        return settings.model_uri
    registry.configure(settings)
    return registry.champion_uri(settings.model_name)


def describe_served(settings: Settings) -> ModelInfo:
    """Lineage of the model ``served_uri`` names, pinned to a version."""
    uri = served_uri(settings)
    if uri is None:
        raise NoModel(registry.NO_CHAMPION)
    if uri.startswith(BENTOML_SCHEME):
        return _store_model(uri)[1]
    from contracts.model_info import describe

    return describe(uri)


def load_engine(settings: Settings, info: ModelInfo):
    """Load the model ``info`` pins from its bundle files and build its serving engine
    (seconds: traces graphs). The MLflow model's pickled pyfunc is downloaded with it but never
    loaded."""
    import mlflow

    from contracts.bundle import load_bundle
    from contracts.pseudonyms import Pseudonymiser
    from contracts.pyfunc import bundle_folder
    from serving.engine import Engine

    pseudonymiser = Pseudonymiser(settings.require_pseudonym_key())
    with tempfile.TemporaryDirectory(prefix="shoprec-serve-") as tmp:
        if info.uri.startswith(BENTOML_SCHEME):
            folder = _store_model(info.uri)[0]
        else:
            folder = Path(mlflow.artifacts.download_artifacts(info.uri, dst_path=tmp))
        recommender = load_bundle(bundle_folder(folder))
    return Engine(recommender, info, pseudonymiser)


def _store_model(uri: str) -> tuple[Path, ModelInfo]:
    import bentoml

    tag = uri[len(BENTOML_SCHEME):]
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as err:
        log.error("model %s is not in the BentoML store", tag)
        raise NoModel(NOT_IN_STORE) from err
    info = ModelInfo.from_json(model.info.metadata[INFO_KEY])  # lineage as packaged
    return Path(model.path) / MLFLOW_DIR, replace(info, uri=uri)


class EngineHolder:
    """The engine in service; ``reload`` builds the next one aside and swaps one reference."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = None
        self.problem: str | None = registry.NO_CHAMPION
        self._lock = threading.Lock()  # one reload at a time; requests never take it

    def reload(self) -> tuple[object | None, object]:
        """(previous, current) engines; loads nothing when the served version is unchanged."""
        with self._lock:
            try:
                info = describe_served(self.settings)
            except NoModel as err:
                if self.engine is None:
                    self.problem = str(err)
                raise
            except Exception as err:  # registry unreachable: the details are for operators
                log.warning("could not read the registry: %s: %s", type(err).__name__, err)
                raise Unavailable(REGISTRY_DOWN) from err
            previous = self.engine
            if previous is not None and previous.info.uri == info.uri:
                return previous, previous
            log.info("loading model %s (version %s)", info.uri, info.version)
            try:
                engine = load_engine(self.settings, info)
            except Exception as err:  # a broken artefact must not take the endpoint down
                log.exception("could not load %s", info.uri)
                kept = "; still serving the previous model" if previous is not None else ""
                raise Unavailable(LOAD_FAILED + kept) from err
            self.engine = engine  # the atomic swap
            self.problem = None
            log.info("serving model %s version %s", info.name, info.version)
            return previous, self.engine
