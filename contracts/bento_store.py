"""How a packaged model sits in the BentoML store, as packaging writes it and serving reads it."""

from __future__ import annotations

BENTOML_SCHEME = "bentoml:"  # a served model URI naming a BentoML store tag: bentoml:<name>:<v>
MLFLOW_DIR = "mlflow_model"  # where a BentoML store model keeps the MLflow model it came from
INFO_KEY = "shoprec"  # BentoML model metadata key holding ``ModelInfo``
MODEL_ARGUMENT = "model_uri"  # Bento argument by which a built Bento pins its model
