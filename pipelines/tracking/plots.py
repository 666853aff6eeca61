"""Every chart a training run logs, drawn in one style: metric@k, training curves, importance.

One helper makes the figure, so all of a run's plots look alike, and it draws on an
object-oriented Agg canvas rather than pyplot: plotting never touches global backend state that
a notebook, a worker thread or another run relies on, and figures need no closing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

PANEL = (6.0, 4.0)  # inches per panel
DPI = 120


def _figure(panels: int = 1, size: tuple[float, float] = PANEL):
    """A figure of ``panels`` side-by-side axes in the house style, and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * panels, size[1]))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def _save(fig, path: Path | str) -> Path:
    path = Path(path)
    for ax in fig.axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def plot_metric_at_k(
    results: Mapping[str, Mapping[str, float]], metric: str, path: Path | str
) -> Path:
    """Line plot of ``metric@k`` against k, one line per model, written to ``path`` only."""
    fig, (ax,) = _figure()
    prefix = f"{metric}@"
    all_ks: set[int] = set()
    for model, metrics in results.items():
        points = sorted(
            (int(key[len(prefix) :]), value)
            for key, value in metrics.items()
            if key.startswith(prefix) and key[len(prefix) :].isdigit()
        )
        if points:
            ks, values = zip(*points, strict=True)
            ax.plot(ks, values, marker="o", label=model)
            all_ks.update(ks)
    ax.set(xlabel="k", ylabel=f"{metric}@k", title=f"{metric}@k", xticks=sorted(all_ks))
    return _save(fig, path)


def plot_training(history: Mapping[str, Sequence[Mapping[str, float]]], path: Path | str) -> Path:
    """Loss and validation loss per epoch, one panel per training stage."""
    fig, axes = _figure(max(1, len(history)), size=(5.0, 3.5))
    for ax, (stage, epochs) in zip(axes, history.items(), strict=False):
        numbers = range(1, len(epochs) + 1)
        for key in ("loss", "val_loss"):
            ax.plot(numbers, [e.get(key, float("nan")) for e in epochs], marker="o", label=key)
        ax.set(xlabel="epoch", title=f"{stage} training", xticks=list(numbers))
    return _save(fig, path)


def plot_importance(importance: Mapping[str, float], path: Path | str) -> Path:
    """Horizontal bars of each ranker feature's global importance, largest at the top."""
    fig, (ax,) = _figure(size=(6.0, 4.5))
    names = sorted(importance, key=importance.__getitem__)
    ax.barh(names, [importance[n] for n in names])
    ax.set(xlabel="mean |integrated-gradients attribution|",
           title="Global feature importance (ranker)")
    return _save(fig, path)
