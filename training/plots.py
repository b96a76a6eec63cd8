"""Plots people would rather look at than a table: each task's primary metric, model vs baselines."""
from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure  # no pyplot: works on servers without a display and in notebooks


def metric_bars(result: dict[str, Any]) -> Figure:
    """One panel per scored task: the primary metric of every ranker, the model highlighted."""
    tasks = [(name, entry) for name, entry in result["tasks"].items() if "scores" in entry]
    fig = Figure(figsize=(3.2 * max(len(tasks), 1), 3.4))
    axes = fig.subplots(1, max(len(tasks), 1), squeeze=False)
    for ax, (name, entry) in zip(axes[0], tasks, strict=False):
        metric = entry["metric"]
        names = list(entry["scores"])
        values = [entry["scores"][r][metric] for r in names]
        colours = ["#d62728" if r == "model" else "#7f7f7f" if r == "champion" else "#1f77b4" for r in names]
        ax.barh(names, values, color=colours)
        ax.set_title(f"{name}\n{metric}", fontsize=9)
        ax.tick_params(labelsize=8)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3f}", va="center", fontsize=7)
        ax.set_xlim(0, max(values + [1e-6]) * 1.35)
    skipped = [f"{n}: {e['skipped']}" for n, e in result["tasks"].items() if "skipped" in e]
    if skipped:
        fig.text(0.01, 0.01, "skipped - " + "; ".join(skipped), fontsize=7)
    fig.tight_layout()
    return fig
