"""The grid's candidates share one stage one: trained by the first, loaded by the others, keyed by
what retrieval reads, and trained again when the saved one is incomplete."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from contracts.bundle import RETRIEVAL_DONE
from models.fit import fit_two_stage
from pipelines.data.features import build_features, save_features
from pipelines.data.shared_retrieval import FOLDER, cache_key, shared_retrieval, shared_wide
from tests.support.tiny import TINY, tiny_shop


def _weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def test_the_second_candidate_loads_the_first_ones_retrieval(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=TINY.history_length)
    uri = save_features(features, tmp_path / "features")
    epochs: list[tuple[str, int]] = []

    first = shared_retrieval(uri, features, TINY, None)

    def no_training(*_args, **_kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr("pipelines.data.shared_retrieval.fit_retrieval", no_training)
    again = shared_retrieval(uri, features, replace(TINY, item_item_record=False), None,
                             on_epoch=lambda stage, epoch, _: epochs.append((stage, epoch)))

    assert first.model is not again.model, "the second was loaded, not handed over in memory"
    for a, b in zip(_weights(first.model), _weights(again.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.history == first.history and len(first.history) >= 1
    assert epochs == [("retrieval", e) for e in range(len(first.history))], \
        "the reused curve is logged on the second candidate's run too"
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid,
                           replace(TINY, item_item_record=False), retrieval=again)
    assert fitted.retrieval is again.model and fitted.history["retrieval"] == first.history


def test_the_key_follows_what_retrieval_reads_and_an_incomplete_save_is_retrained(
        tmp_path) -> None:
    assert cache_key(TINY) == cache_key(replace(TINY, item_item=False, negatives=9))
    assert cache_key(TINY) != cache_key(replace(TINY, dim=TINY.dim * 2))
    assert cache_key(TINY) != cache_key(replace(TINY, seed=TINY.seed + 1))

    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=TINY.history_length)
    uri = save_features(features, tmp_path / "features")
    first = shared_retrieval(uri, features, TINY, None)
    saved = tmp_path / "features" / FOLDER / cache_key(TINY)
    (saved / RETRIEVAL_DONE).write_text('{"history": [', encoding="utf-8")  # killed mid-write
    trained: list[int] = []

    again = shared_retrieval(uri, features, TINY, None,
                             on_epoch=lambda stage, epoch, _: trained.append(epoch))

    assert trained, "trained again, not loaded from a half-written save"
    assert len(again.history) == len(first.history)
    assert (saved / RETRIEVAL_DONE).read_text(encoding="utf-8").startswith('{"history": [{')


def test_the_wide_candidates_share_their_constants_and_train_as_if_fitted_alone(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=TINY.history_length)
    uri = save_features(features, tmp_path / "features")
    wide = shared_wide(uri, features, TINY)
    assert wide is not None and wide.served.lambda_ == wide.inner.lambda_
    assert shared_wide(uri, features, replace(TINY, item_item=False)) is None

    def no_fit(*_args, **_kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr("pipelines.data.shared_retrieval.fit_wide_constants", no_fit)
    window = replace(TINY, item_item_record=False)
    assert shared_wide(uri, features, window) is wide, "the window candidate reuses them"
    monkeypatch.undo()
    assert shared_wide(uri, features, replace(TINY, ranker_share=0.3)) is not wide

    alone = fit_two_stage(features.spec, features.table, features.train, features.valid, window)
    shared = fit_two_stage(features.spec, features.table, features.train, features.valid, window,
                           wide=wide)
    assert shared.wide is wide and shared.collaborative is wide.served
    np.testing.assert_array_equal(alone.collaborative.matrix, shared.collaborative.matrix)
    for a, b in zip(_weights(alone.ranker), _weights(shared.ranker), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
