"""Every chart of a training run is a PNG at the path given, and nothing else is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.tracking.plots import plot_importance, plot_metric_at_k, plot_training

PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = {"retrieval": [{"loss": 3.0, "val_loss": 3.2}, {"loss": 2.5, "val_loss": 3.0}],
           "ranking": [{"loss": 0.7}]}  # an epoch without val_loss still plots
RESULTS = {"popularity": {"ndcg@5": 0.2, "ndcg@10": 0.21, "recall@10": 0.3},
           "ease": {"ndcg@5": 0.4, "ndcg@10": 0.44}}


@pytest.mark.parametrize(("plot", "data"), [
    (lambda data, path: plot_metric_at_k(data, "ndcg", path), RESULTS),
    (plot_training, HISTORY),
    (plot_importance, {"history": 0.3, "category": 0.1, "price_band": 0.05}),
], ids=["metric_at_k", "training", "importance"])
def test_plot_writes_only_the_given_png(plot, data, tmp_path: Path) -> None:
    path = plot(data, tmp_path / "chart.png")

    assert path == tmp_path / "chart.png"
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]


def test_metric_without_points_still_plots(tmp_path: Path) -> None:
    path = plot_metric_at_k(RESULTS, "map", tmp_path / "map.png")  # no model has map@k
    assert path.read_bytes()[:8] == PNG
