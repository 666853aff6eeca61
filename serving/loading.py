"""Which model to serve, loading it, and swapping it atomically while requests keep flowing.

The served model is ``settings.model_uri`` when pinned (an MLflow URI, or ``bentoml:<tag>`` for a
model in the BentoML store, as a built Bento pins it), else the registry's champion. Requests take
``holder.engine`` once and use that object to the end, so a reload never changes a model under a
request in flight: the old engine lives until its last request drops it.

Models load from their bundle files (JSON metadata, NumPy and Parquet tables, weights) with
``contracts.bundle.load_bundle``: nothing fetched from the registry is ever unpickled or run, so
moving ``@champion`` cannot run code in the endpoint. What clients read when the endpoint cannot
answer is a generic reason; the details (URIs, exception text) go to the server log only.

During a rollout (``contracts.registry.rollout_plan``) the holder keeps two engines: the stable
model as ``engine`` and the champion on trial in ``rollout`` (``serving.rollout``). A breached
rollout is ended at once in memory (requests go back to the stable model alone), then recorded in
the registry off the event loop: ``champion`` moved back, the reason tagged on the version.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from contracts import registry
from contracts.bento_store import BENTOML_SCHEME, INFO_KEY, MLFLOW_DIR
from contracts.model_info import ModelInfo
from contracts.settings import Settings
from serving import metrics
from serving.rollout import Rollout

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


def describe_rollout(settings: Settings) -> tuple[ModelInfo, ModelInfo | None, str | None,
                                                   datetime | None]:
    """(stable, candidate, stage, since): the served model alone (the rest None) unless the
    registry has a champion on trial, in ``stage`` since ``since`` (when tagged). A pinned model
    is never on trial."""
    if settings.model_uri:
        return describe_served(settings), None, None, None
    from contracts.model_info import describe

    registry.configure(settings)
    name = settings.model_name
    plan = registry.rollout_plan(name)
    if plan.champion is None:
        raise NoModel(registry.NO_CHAMPION)
    if plan.stage is None:
        return describe(f"models:/{name}/{plan.champion}"), None, None, None
    return (describe(f"models:/{name}/{plan.stable}"), describe(f"models:/{name}/{plan.champion}"),
            plan.stage, plan.since_time)


def load_engine(settings: Settings, info: ModelInfo):
    """Load the model ``info`` pins from its bundle files and build its serving engine
    (seconds: traces graphs). The MLflow model's pyfunc code is downloaded with it but never
    run."""
    from contracts.pseudonyms import Pseudonymiser
    from contracts.pyfunc import load_logged
    from serving.engine import Engine

    pin_model_threads(settings.serve.model_threads)
    pseudonymiser = Pseudonymiser(settings.require_pseudonym_key())
    stored = _store_model(info.uri)[0] if info.uri.startswith(BENTOML_SCHEME) else None
    store = shopper_store(settings)
    recommender = load_logged(info.uri, stored, _catalogue(store))
    return Engine(recommender, info, pseudonymiser, store)


def _catalogue(store):
    """The store's catalogue (items added since training become recommendable), or None."""
    if store is None:
        return None
    try:
        return store.catalogue()
    except Exception as err:  # an outage costs the new items, never the model
        log.warning("shopper store catalogue unreadable (%s: %s): serving the model's own",
                    type(err).__name__, err)
        return None


def unseen_items(engine, store) -> int:
    """How many items the store's catalogue holds that ``engine``'s model cannot recommend yet."""
    catalogue = _catalogue(store)
    if catalogue is None or engine is None:
        return 0
    return len(set(catalogue["item_id"].astype(str)) - set(engine.rec.item_index))


@lru_cache(maxsize=4)
def _open_store(url: str, limit: int):
    from contracts.shopper_store import open_store

    return open_store(url, limit)


def shopper_store(settings: Settings):
    """The process's one connection to the online shopper store (None when it is off); every
    engine and the feedback route share it."""
    url = settings.shopper_store_url
    return _open_store(url, settings.shopper_store_limit) if url else None


def pin_model_threads(threads: int) -> None:
    """Threads per TensorFlow operation (``settings.serve.model_threads``; 0 leaves TF's
    default). TensorFlow fixes it when it first runs an operation: a process that already ran
    one keeps what it had, and says so."""
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads() or "default"
        log.info("TensorFlow already runs with %s threads per operation; serve_model_threads=%s "
                 "applies to a fresh process", current, threads)


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


def settle_heap() -> None:
    """Move everything alive after a load out of the garbage collector's sight.

    A loaded model leaves about 650,000 long-lived Python objects (TensorFlow, MLflow, pydantic);
    every full collection walked them all, a 0.2-0.6 s pause on whatever request was in flight,
    and requests allocate enough to trigger one every few seconds under load: that was the
    endpoint's p99. Frozen objects are still freed by reference counting; the next reload
    unfreezes first, so a replaced model's cycles are collected then.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class EngineHolder:
    """The engine in service (and, during a rollout, the one on trial); ``reload`` builds what
    changed aside and swaps references, so requests never wait for a load."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = None
        self.rollout: Rollout | None = None
        self.rollbacks: deque[dict[str, Any]] = deque(maxlen=20)  # latest first, for /metadata
        self.problem: str | None = registry.NO_CHAMPION
        self._lock = threading.Lock()  # one reload at a time; requests never take it

    def reload(self) -> tuple[object | None, object]:
        """(previous, current) stable engines; loads nothing that is already loaded."""
        with self._lock:
            try:
                stable, candidate, stage, since = describe_rollout(self.settings)
            except NoModel as err:
                if self.engine is None:
                    self.problem = str(err)
                raise
            except Exception as err:  # registry unreachable: the details are for operators
                log.warning("could not read the registry: %s: %s", type(err).__name__, err)
                raise Unavailable(REGISTRY_DOWN) from err
            previous, trial = self.engine, self.rollout
            loaded = {e.info.uri: e for e in (previous, trial and trial.candidate) if e is not None}
            engine = loaded.get(stable.uri) or self._load(stable, previous)
            unchanged = (trial is not None and candidate is not None and not trial.ended
                         and trial.stable is engine and trial.stage == stage
                         and trial.candidate.info.uri == candidate.uri)
            if trial is not None and not unchanged:
                trial.end()
            rollout = trial if unchanged else None  # unchanged: it keeps its counts
            if candidate is not None and not unchanged:
                rollout = self._trial(engine, loaded.get(candidate.uri), candidate, stage,
                                      since)
            self.engine, self.rollout = engine, rollout  # the atomic swaps
            self.problem = None
            if engine is not previous or rollout is not trial:
                settle_heap()
            if engine is not previous:
                log.info("serving model %s version %s", stable.name, stable.version)
            return previous, engine

    def refresh_catalogue(self) -> bool:
        """Rebuild the served model's engine when the shopper store's catalogue holds items it
        cannot recommend yet (products added since training), then swap, as ``reload`` does;
        False when nothing is new. Not during a rollout: its two engines stay as they are."""
        with self._lock:
            engine = self.engine
            store = shopper_store(self.settings)
            if engine is None or self.rollout is not None or not unseen_items(engine, store):
                return False
            self.engine = self._load(engine.info, engine)
            settle_heap()
            log.info("serving model version %s with %d items added to the catalogue since "
                     "training", engine.info.version, int(self.engine.rec.is_new.sum()))
            return True

    def _load(self, info: ModelInfo, previous) -> object:
        log.info("loading model %s (version %s)", info.uri, info.version)
        try:
            return load_engine(self.settings, info)
        except Exception as err:  # a broken artefact must not take the endpoint down
            log.exception("could not load %s", info.uri)
            kept = "; still serving the previous model" if previous is not None else ""
            raise Unavailable(LOAD_FAILED + kept) from err

    def _trial(self, stable, loaded, candidate: ModelInfo, stage: str,
               since: datetime | None = None) -> Rollout | None:
        """The candidate's rollout; one that cannot even load is rolled back at once."""
        if loaded is None:
            log.info("loading candidate %s (version %s) for %s", candidate.uri,
                     candidate.version, stage)
            try:
                loaded = load_engine(self.settings, candidate)
            except Exception as err:
                log.exception("could not load candidate %s", candidate.uri)
                self._roll_back(candidate, stable.info, stage,
                                f"could not be loaded ({type(err).__name__})", None)
                return None
        log.info("rollout: v%s in %s beside stable v%s", candidate.version, stage,
                 stable.info.version)
        return Rollout(stable, loaded, stage, self.settings, self._breached, since)

    def _breached(self, rollout: Rollout, reason: str) -> None:
        """Called on the event loop by a rollout that broke a threshold: the stable model
        answers alone from the next request on; the registry hears of it off the loop."""
        if self.rollout is rollout:
            self.rollout = None
        self._roll_back(rollout.candidate.info, rollout.stable.info, rollout.stage, reason,
                        rollout.to_json())

    def _roll_back(self, candidate: ModelInfo, stable: ModelInfo, stage: str, reason: str,
                   figures: dict[str, Any] | None) -> None:
        reason = f"{stage}: {reason}"
        log.warning("rolling back model %s v%s to v%s: %s", candidate.name, candidate.version,
                    stable.version, reason)
        metrics.ROLLBACKS.labels(str(candidate.version)).inc()
        self.rollbacks.appendleft({"at": datetime.now(UTC), "version": candidate.version,
                                   "stable_version": stable.version, "stage": stage,
                                   "reason": reason, "figures": figures})
        threading.Thread(target=self._record_rollback, name="shoprec-rollback", daemon=True,
                         args=(str(candidate.version), str(stable.version), reason)).start()

    def _record_rollback(self, version: str, stable: str, reason: str) -> None:
        try:
            registry.roll_back(self.settings.model_name, version, stable, reason)
        except Exception:  # the endpoint already serves the stable model; operators must know
            log.exception("could not record the rollback of v%s in the registry", version)
