"""Small SVG charts drawn on the server for the effect dashboard: no chart library, no script.

An interval chart (an estimate and its 95 % interval per row, with the zero line: an interval
across zero is no proof of an effect) and a band over time (the weekly estimate with its band).
Text is escaped; the markup is returned as `Markup` for the template.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

Interval = tuple[str, float | None, float | None, float | None]  # label, estimate, low, high


def _scale(values: Sequence[float], left: float, right: float) -> tuple[float, float]:
    low, high = min([*values, 0.0]), max([*values, 0.0])
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    return low, (right - left) / (high - low)


def interval_chart(rows: Sequence[Interval], title: str, width: int = 560) -> Markup:
    """One row per label: a dot at the estimate, a bar over its interval, a zero line."""
    longest = max((len(label) for label, *_ in rows), default=10)
    left, right, row_height = min(width / 2, 12.0 + 7.2 * longest), width - 20.0, 28
    values = [v for _, est, lo, hi in rows for v in (est, lo, hi) if v is not None]
    low, per = _scale(values, left, right)
    height = 30 + row_height * max(1, len(rows))

    def x(value: float) -> float:
        return left + (value - low) * per

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>',
             f'<line x1="{x(0):.1f}" y1="10" x2="{x(0):.1f}" y2="{height - 15}" stroke="#999" stroke-dasharray="4 3"/>',
             f'<text x="{x(0):.1f}" y="{height - 2}" font-size="11" text-anchor="middle" fill="#555">0</text>']
    if not rows:
        parts.append(f'<text x="{left}" y="30" font-size="13" fill="#555">No data in this period.</text>')
    for index, (label, estimate, lo, hi) in enumerate(rows):
        y = 25 + index * row_height
        parts.append(f'<text x="{left - 8}" y="{y + 4}" font-size="13" text-anchor="end">{escape(label)}</text>')
        if lo is not None and hi is not None:
            parts.append(f'<line x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}" stroke="#0b5fff" stroke-width="4" '
                         f'stroke-opacity="0.35"/>')
        if estimate is not None:
            parts.append(f'<circle cx="{x(estimate):.1f}" cy="{y}" r="5" fill="#0b5fff"/>'
                         f'<text x="{min(x(estimate) + 8, right - 40):.1f}" y="{y - 7}" font-size="11" fill="#333">'
                         f'{estimate:+.2f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def band_chart(points: Sequence[Interval], title: str, width: int = 560, height: int = 200) -> Markup:
    """The estimate over time (one point per label, in order) inside its interval band."""
    top, bottom, left, right = 15.0, height - 30.0, 50.0, width - 15.0
    values = [v for _, est, lo, hi in points for v in (est, lo, hi) if v is not None]
    low, per = _scale(values, top, bottom)
    step = (right - left) / max(1, len(points) - 1)

    def y(value: float) -> float:
        return bottom - (value - low) * per

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{y(0):.1f}" x2="{right}" y2="{y(0):.1f}" stroke="#999" stroke-dasharray="4 3"/>',
             f'<text x="{left - 6}" y="{y(0) + 4:.1f}" font-size="11" text-anchor="end" fill="#555">0</text>']
    banded = [(i, lo, hi) for i, (_, _, lo, hi) in enumerate(points) if lo is not None and hi is not None]
    if len(banded) > 1:
        upper = " ".join(f"{left + i * step:.1f},{y(hi):.1f}" for i, _, hi in banded)
        lower = " ".join(f"{left + i * step:.1f},{y(lo):.1f}" for i, lo, _ in reversed(banded))
        parts.append(f'<polygon points="{upper} {lower}" fill="#0b5fff" fill-opacity="0.15"/>')
    line = [(i, est) for i, (_, est, _, _) in enumerate(points) if est is not None]
    if line:
        parts.append('<polyline fill="none" stroke="#0b5fff" stroke-width="2" points="'
                     + " ".join(f"{left + i * step:.1f},{y(est):.1f}" for i, est in line) + '"/>')
    for i, (label, est, _, _) in enumerate(points):
        parts.append(f'<text x="{left + i * step:.1f}" y="{height - 10}" font-size="11" text-anchor="middle">'
                     f'{escape(label)}</text>')
        if est is not None:
            parts.append(f'<circle cx="{left + i * step:.1f}" cy="{y(est):.1f}" r="3.5" fill="#0b5fff"/>')
    if not points:
        parts.append(f'<text x="{left}" y="40" font-size="13" fill="#555">No data in this period.</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
