"""The bench quality plot: per eval metric, each method's gain over random's mean at each
budget with its 95% paired bootstrap interval, and beside it the gain of its length-matched
random (hollow): a method whose point sits on its control's adds nothing beyond length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iclselect.bench.quality.stats import paired_bootstrap
from iclselect.bench.quality.verdicts import CONTROLS, item_values, metrics


def quality_plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = metrics(summary)
    arms = summary["arms"]
    methods = list(dict.fromkeys(a["method"] for a in arms if a["method"] not in CONTROLS))
    budgets = sorted({a["budget"] for a in arms if a["method"] == "random"})
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    figure, grid = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.4 * nrows), squeeze=False)
    panels = grid.ravel()
    rows = summary["comparisons"]
    width = 0.8 / max(1, len(methods))
    # Past ten methods the default cycle repeats its colours: two arms would look like one.
    palette = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    for axes, (name, metric) in zip(panels, columns, strict=False):
        for m, method in enumerate(methods):
            color = palette(m)
            for b, budget in enumerate(budgets):
                x = b + (m - (len(methods) - 1) / 2) * width
                row = next(
                    (
                        r
                        for r in rows
                        if r["method"] == method
                        and r["budget"] == budget
                        and r["set"] == name
                        and r["metric"] == metric
                        and r["reference"] == "random"
                    ),
                    None,
                )
                if row is None:
                    continue
                spread = [[row["gain"] - row["low"]], [row["high"] - row["gain"]]]
                label = method if b == 0 else None
                axes.errorbar(x, row["gain"], spread, fmt="o", color=color, capsize=2, label=label)
                control = _matched_gain(arms, method, budget, name, metric)
                if control is not None:
                    spread = [[control.gain - control.low], [control.high - control.gain]]
                    axes.errorbar(
                        x + width / 3,
                        control.gain,
                        spread,
                        fmt="o",
                        mfc="white",
                        color=color,
                        capsize=2,
                        alpha=0.7,
                    )
        axes.axhline(0, color="black", linewidth=0.8)
        axes.set_xticks(range(len(budgets)), [f"{b * 100:g}%" for b in budgets])
        label = "NLL: random - arm" if metric == "nll" else "accuracy: arm - random"
        axes.set_title(f"{name}\n{label} (95% CI)", fontsize=8)
        axes.tick_params(labelsize=7)
    for axes in panels[len(columns) :]:
        axes.set_visible(False)
    controls = any(a["method"] == "matched" for a in arms)
    title = "filled: method, hollow: its length-matched random" if controls else "method"
    handles, labels = panels[0].get_legend_handles_labels()
    spare = panels[len(columns) :]
    # The legend gets a panel of its own (a spare one, else a column at the right), so that
    # it never covers a point.
    if len(spare):
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles, labels, loc="center", fontsize=7, title=title, title_fontsize=7)
        figure.tight_layout()
    else:
        figure.legend(handles, labels, loc="center right", fontsize=7, title=title,
                      title_fontsize=7)  # fmt: skip
        figure.tight_layout(rect=(0, 0, 0.82, 1))
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)


def _matched_gain(arms, method, budget, name, metric):
    """The length-matched controls' gain over random (their seeds against random's)."""
    import numpy as np

    group = [
        a for a in arms if a["method"] == "matched" and a["of"] == method and a["budget"] == budget
    ]
    randoms = [a for a in arms if a["method"] == "random" and a["budget"] == budget]
    if not group or not randoms:
        return None
    matched = np.stack([item_values(a, name, metric) for a in group]).mean(axis=0)
    reference = np.stack([item_values(a, name, metric) for a in randoms])
    return paired_bootstrap(matched, reference, lower_is_better=metric == "nll")
