"""The MLflow pyfunc flavour of the two-stage model: ``mlflow.pyfunc.load_model`` recommends.

Input rows carry pseudonymised ``user_id`` values (as in curated data; the pseudonymisation key is
a secret and never travels with a model) and an optional ``k``. Output: one row per
recommendation with ``user_id``, ``item_id``, ``score`` and ``rank``.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

BUNDLE = "bundle"
DEFAULT_K = 10

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "user_id"), ColSpec("long", "k", required=False)]),
    outputs=Schema([ColSpec("string", "user_id"), ColSpec("string", "item_id"),
                    ColSpec("double", "score"), ColSpec("long", "rank")]),
)


class TwoStagePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from contracts.bundle import load_bundle

        self.recommender = load_bundle(context.artifacts[BUNDLE])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for record in model_input.to_dict("records"):
            k = record.get("k")
            k = DEFAULT_K if k is None or pd.isna(k) else int(k)
            for rec in self.recommender.recommend(str(record["user_id"]), k=k):
                rows.append({"user_id": str(record["user_id"]), "item_id": rec.item_id,
                             "score": rec.score, "rank": rec.rank})
        return pd.DataFrame(rows, columns=["user_id", "item_id", "score", "rank"])
