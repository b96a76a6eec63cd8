"""A PNG of an effect report: what a CRM lead puts on a slide.

Left: revenue per client in the period, per variant, with its 95 % interval. Right: the
incremental revenue per client of each variant against control, overall and per kind, with its
95 % Welch interval and a zero line (an interval across zero is no proof of an effect). Agg
backend: no display needed, safe in a server process.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend first)

_COLOURS = {"control": "#8c8c8c"}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def _colour(variant: str, order: list[str]) -> str:
    return _COLOURS.get(variant) or _PALETTE[order.index(variant) % len(_PALETTE)]


def _error(estimate: float | None, low: float | None, high: float | None) -> tuple[float, list[float]]:
    """Value and asymmetric error bar lengths (no bar where the interval is undefined)."""
    value = estimate or 0.0
    if low is None or high is None:
        return value, [0.0, 0.0]
    return value, [max(value - low, 0.0), max(high - value, 0.0)]


def _comparisons(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [("all kinds", e) for e in report.get("effects", [])]
    for kind, section in report.get("by_kind", {}).items():
        rows += [(kind.replace("_", " "), e) for e in section.get("effects", [])]
    return rows + [("experiment", e) for e in report.get("between_variants", [])]


def _p(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return "  p<0.001" if p_value < 0.001 else f"  p={p_value:.3f}"


def period_label(period: dict[str, str]) -> str:
    """"2024-03-01 to 2024-03-28" (the last day included) for a period of whole days, else the instants."""
    start, end = datetime.fromisoformat(period["from"]), datetime.fromisoformat(period["to"])
    if start.time() == end.time() == time(0) and end > start:
        return f"{start.date()} to {(end - timedelta(days=1)).date()}"
    return f"{period['from']} to {period['to']} (excluded)"


def plot_report(report: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Write the report's plot to `path` (PNG) and return the path."""
    path = Path(path)
    variants = [v for v, fig in report["variants"].items() if fig["clients"]]
    order = [v for v in variants if v != "control"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [1, 1.5]})
    for x, variant in enumerate(variants):
        fig = report["variants"][variant]
        ci = fig.get("revenue_per_client_ci") or {}
        value, err = _error(fig["revenue_per_client"], ci.get("low"), ci.get("high"))
        left.bar(x, value, color=_colour(variant, order), yerr=[[err[0]], [err[1]]], capsize=6)
        left.annotate(f"{value:,.2f}\n{fig['clients']:,} clients", (x, value + err[1]), ha="center", va="bottom",
                      fontsize=9, xytext=(0, 3), textcoords="offset points")
    left.set_xticks(range(len(variants)), variants)
    left.set_ylabel("revenue per client in the period")
    left.set_title("Revenue per client (95 % CI)")
    left.margins(y=0.2)
    rows = _comparisons(report)
    for y, (_, effect) in enumerate(rows):
        per_client = effect["per_client"]
        value, err = _error(per_client["estimate"], per_client["ci_low"], per_client["ci_high"])
        right.errorbar(value, y, xerr=[[err[0]], [err[1]]], fmt="o", capsize=5,
                       color=_colour(effect["variant"], order))
        right.annotate(f"{value:+,.2f}{_p(effect.get('p_value'))}", (value, y),
                       xytext=(0, 7), textcoords="offset points", ha="center", fontsize=8)
    right.axvline(0.0, color="black", linewidth=0.8)
    right.set_yticks(range(len(rows)), [f"{label}\n{e['variant']} vs {e['against']}" for label, e in rows])
    right.invert_yaxis()
    right.set_xlabel("incremental revenue per client (Welch 95 % CI)")
    right.set_title("Incremental effect (intention-to-treat)")
    figure.suptitle(f"{title or 'Effect report'}\n{period_label(report['period'])}", fontsize=12)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
