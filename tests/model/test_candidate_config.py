"""A candidate's config: the settings' train_config under one grid entry, nothing the bundle
cannot carry."""

from __future__ import annotations

import pytest

from pipelines.candidate import candidate_config


def test_grid_entry_overrides_train_config_over_the_defaults(settings) -> None:
    settings = settings.model_copy(update={"train_config": {"dim": 16, "ranking_epochs": 1}})

    config = candidate_config(settings, {"dim": 32})

    assert (config.dim, config.ranking_epochs) == (32, 1)
    assert config.retrieval_epochs == type(config)().retrieval_epochs


def test_the_benchmark_only_item_item_part_is_refused(settings) -> None:
    with pytest.raises(ValueError, match="benchmark-only"):
        candidate_config(settings, {"item_item": True})
