"""The report's figures, each returned as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

_KEPT = "#d9480f"
_DROPPED = "#adb5bd"
_POOL = "#4c6ef5"


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _figure(width: float = 7.0, height: float = 3.2, rows: int = 1, columns: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, columns, figsize=(width, height))


def score_histogram(
    scores: np.ndarray, selected: np.ndarray, cut: float | None, name: str
) -> bytes:
    """Scores of kept and dropped rows, stacked, with the cut (the last kept score) marked."""
    figure, axes = _figure()
    bins = np.histogram_bin_edges(scores, bins=min(50, max(10, len(scores) // 20)))
    axes.hist(
        [scores[~selected], scores[selected]],
        bins=bins,
        stacked=True,
        color=[_DROPPED, _KEPT],
        label=["dropped", "kept"],
    )
    if cut is not None:
        axes.axvline(cut, color="black", linestyle="--", linewidth=1)
        axes.annotate(f" cut {cut:.4g}", (cut, axes.get_ylim()[1] * 0.92), fontsize=8)
    axes.set_xlabel(f"{name} score")
    axes.set_ylabel("rows")
    axes.legend(frameon=False)
    return _png(figure)


def component_histograms(components: dict[str, np.ndarray], selected: np.ndarray) -> bytes:
    """One small histogram per numeric component, kept rows over all rows."""
    names = list(components)
    columns = min(3, len(names))
    rows = (len(names) + columns - 1) // columns
    figure, grid = _figure(3.0 * columns, 2.4 * rows, rows, columns)
    cells = np.atleast_1d(grid).ravel()
    for cell, name in zip(cells, names, strict=False):
        values = components[name]
        finite = np.isfinite(values)
        bins = np.histogram_bin_edges(values[finite], bins=30)
        cell.hist(values[finite], bins=bins, color=_DROPPED, label="all")
        cell.hist(values[finite & selected], bins=bins, color=_KEPT, label="kept")
        cell.set_title(name, fontsize=9)
        cell.tick_params(labelsize=7)
    for cell in cells[len(names) :]:
        cell.axis("off")
    cells[0].legend(frameon=False, fontsize=7)
    figure.tight_layout()
    return _png(figure)


def scatter_map(xy: np.ndarray, selected: np.ndarray, title: str) -> bytes:
    figure, axes = _figure(6.5, 5.0)
    axes.scatter(xy[~selected, 0], xy[~selected, 1], s=6, c=_DROPPED, label="dropped", lw=0)
    axes.scatter(xy[selected, 0], xy[selected, 1], s=14, c=_KEPT, label="kept", lw=0)
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(frameon=False, loc="best")
    return _png(figure)


def coverage_bars(labels: Sequence[str], pool: np.ndarray, kept: np.ndarray) -> bytes:
    """Each cluster's share of the pool beside its share of the kept subset."""
    figure, axes = _figure(7.0, 0.35 * len(labels) + 1.0)
    positions = np.arange(len(labels))
    axes.barh(positions - 0.2, pool * 100, height=0.4, color=_POOL, label="share of pool")
    axes.barh(positions + 0.2, kept * 100, height=0.4, color=_KEPT, label="share of kept")
    axes.set_yticks(positions, labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("% of rows")
    axes.legend(frameon=False, fontsize=8)
    return _png(figure)


def heatmap(matrix: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    figure, axes = _figure(0.9 * len(labels) + 2.0, 0.8 * len(labels) + 1.0)
    image = axes.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        text = "-" if np.isnan(value) else f"{value:.2f}"
        axes.text(j, i, text, ha="center", va="center", fontsize=7)
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.8)
    return _png(figure)
