"""A candidate's config: the settings' train_config under one grid entry."""

from __future__ import annotations

from pipelines.steps.candidate import candidate_config


def test_grid_entry_overrides_train_config_over_the_defaults(settings) -> None:
    settings = settings.with_values(train_config={"dim": 16, "ranking_epochs": 1})

    config = candidate_config(settings, {"dim": 32})

    assert (config.dim, config.ranking_epochs) == (32, 1)
    assert config.retrieval_epochs == type(config)().retrieval_epochs


def test_the_wide_item_item_part_is_in_the_product_default(settings) -> None:
    assert candidate_config(settings).item_item
    assert not candidate_config(settings, {"item_item": False}).item_item
