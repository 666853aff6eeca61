"""How a packaged model sits in the BentoML store, as packaging writes it and serving reads it."""

from __future__ import annotations

from pathlib import Path

BENTOML_SCHEME = "bentoml:"  # a served model URI naming a BentoML store tag: bentoml:<name>:<v>
MLFLOW_DIR = "mlflow_model"  # where a BentoML store model keeps the MLflow model it came from
INFO_KEY = "shoprec"  # BentoML model metadata key holding ``ModelInfo``
MODEL_ARGUMENT = "model_uri"  # Bento argument by which a built Bento pins its model


def server_home(store: Path, home: Path) -> Path:
    """A BentoML home for one server process: its ``bentos`` and ``models`` are the shared
    store's, its metrics folder its own. BentoML empties ``<home>/prometheus_multiproc_dir``
    when a server starts, so two servers on one home (the endpoint and the DAG's check of a new
    Bento) would wipe each other's ``/metrics``."""
    home.mkdir(parents=True, exist_ok=True)
    for name in ("bentos", "models"):
        (store / name).mkdir(parents=True, exist_ok=True)
        link = home / name
        if not link.is_symlink():
            link.symlink_to((store / name).resolve(), target_is_directory=True)
    return home
