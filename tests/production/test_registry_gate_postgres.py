"""The registry gate round trip on an MLflow server whose backend store is PostgreSQL.

The gate's tests in ``tests/integration/test_registry_gate.py`` run here unchanged: this module
imports them with their fixtures and overrides ``mlflow_server`` with the PostgreSQL-backed
server, so every alias, tag and lineage check also holds on the production store (long
parameter values and 120-parameter runs included). One more test reads the rows in PostgreSQL.
"""

from __future__ import annotations

import pytest

from infra.production import databases
from tests.integration.test_registry_gate import (  # noqa: F401  (collected and used here)
    dataset,
    gate,
    name,
    test_a_candidate_worse_than_ease_is_never_champion,
    test_a_champion_is_replaced_only_by_a_superior_version,
    test_a_champion_that_could_not_be_rescored_blocks_promotion,
    test_a_champion_that_moved_since_the_evaluation_is_left_alone,
    test_a_first_version_clearly_worse_than_the_floor_stays_challenger,
    test_a_first_version_no_worse_than_the_floor_becomes_champion,
    test_better_model_replaces_champion,
    test_configure_points_tracking_and_registry_at_the_server,
    test_failed_registration_leaves_the_champion_alone,
    test_first_model_becomes_champion,
    test_lineage_is_logged_as_a_training_input,
    test_nan_bounds_clear_nothing,
    test_one_experiment_per_dataset_with_standard_tags,
    test_params_are_flattened_with_dotted_keys,
    test_the_decision_is_written_before_any_alias_moves,
    test_too_few_shoppers_are_refused_with_the_reason,
    test_worse_model_becomes_challenger,
    tracking_uri,
)


@pytest.fixture(scope="module")
def mlflow_server(mlflow_postgres: str) -> str:
    """The imported tests' server: the PostgreSQL-backed one."""
    return mlflow_postgres


def test_server_keeps_the_registry_in_postgres(
    mlflow_store: str, name: str, dataset: str  # noqa: F811  (the imported fixtures)
) -> None:
    first = gate(dataset, name, 0.30)
    second = gate(dataset, name, 0.20)
    with databases.cursor(mlflow_store) as cursor:
        cursor.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s "
                       "ORDER BY alias", (name,))
        aliases = cursor.fetchall()
        cursor.execute("SELECT value FROM model_version_tags WHERE name = %s AND version = %s "
                       "AND key = 'gate_decision'", (name, int(second.version)))
        (decision,) = cursor.fetchone()
    assert aliases == [("challenger", int(second.version)), ("champion", int(first.version))]
    assert decision == "rejected"
