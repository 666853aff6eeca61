"""Explanations speak to the shopper as "you": no feature value names them by pseudonym."""

from __future__ import annotations

from models.values import feature_values
from pipelines.data.features import build_features
from tests.support.tiny import tiny_shop


def test_feature_values_say_you_and_never_the_pseudonym() -> None:
    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=4)
    data, spec = features.train, features.spec
    assert len(data.user) > 10
    for r in range(0, len(data.user), 7):
        pseudonym = spec.users.values[int(data.user[r])]
        assert pseudonym.startswith("u_")
        row = {"user_id": data.user[r], "history": data.history[r], "hour": data.hour[r],
               "day_of_week": data.day_of_week[r], "item_id": 1 + r % 10}
        values = feature_values(spec, features.table, row)
        assert values["user_id"] == "you"
        assert not [k for k, v in values.items() if pseudonym in v or v.startswith("u_")]
