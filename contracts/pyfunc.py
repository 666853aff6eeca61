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
        from models.two_stage import Query

        users = model_input["user_id"].astype(str).tolist()
        ks = model_input["k"] if "k" in model_input else pd.Series([None] * len(users))
        queries = [Query(user, DEFAULT_K if k is None or pd.isna(k) else int(k))
                   for user, k in zip(users, ks, strict=True)]
        rows = [{"user_id": query.user, **vars(rec)}
                for query, ranked in zip(queries, self.recommender.recommend_many(queries),
                                         strict=True)
                for rec in self.recommender.recommendations(ranked)]
        return pd.DataFrame(rows, columns=["user_id", "item_id", "score", "rank"])
