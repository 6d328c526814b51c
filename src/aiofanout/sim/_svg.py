"""The plan's picture: concurrency, throughput and 429s per second, as hand-written SVG.

Three stacked panels sharing the time axis; no plotting dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ._timeline import Timeline

__all__ = ["timeline_svg"]

WIDTH, PANEL, GAP, LEFT, TOP = 760, 140, 40, 70, 40


def _points(values: Sequence[float], top: float, scale_x: float, peak: float) -> str:
    step = max(1, len(values) // 1500)  # at most ~1,500 points a line
    points = []
    for second in range(0, len(values), step):
        chunk = values[second : second + step]
        value = max(chunk) if chunk else 0
        x = LEFT + second * scale_x
        y = top + PANEL - (value / peak) * PANEL if peak else top + PANEL
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)


def _panel(title: str, values: Sequence[float], top: float, seconds: int, color: str) -> list[str]:
    peak = max(values, default=0) or 1
    scale_x = (WIDTH - LEFT - 20) / max(1, seconds)
    return [
        f'<text x="{LEFT}" y="{top - 8}" font-size="13">{escape(title)} '
        f"(peak {max(values, default=0):,.0f})</text>",
        f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - 20}" height="{PANEL}" '
        'fill="none" stroke="#ccc"/>',
        f'<text x="{LEFT - 6}" y="{top + 10}" font-size="11" text-anchor="end">{peak:,.0f}</text>',
        f'<text x="{LEFT - 6}" y="{top + PANEL}" font-size="11" text-anchor="end">0</text>',
        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
        f'points="{_points(values, top, scale_x, peak)}"/>',
    ]


def timeline_svg(timeline: Timeline, title: str) -> str:
    """The SVG document of ``timeline``: three panels over its seconds."""
    seconds = max(1, timeline.seconds)
    height = TOP + 3 * (PANEL + GAP) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    panels = (
        ("environments busy", timeline.busy, "#1f77b4"),
        ("calls finished per second", timeline.completed, "#2ca02c"),
        ("429s per second", timeline.throttled, "#d62728"),
    )
    for index, (name, values, color) in enumerate(panels):
        parts += _panel(name, values, TOP + 15 + index * (PANEL + GAP), seconds, color)
    axis_y = TOP + 15 + 3 * (PANEL + GAP) - GAP + 16
    parts.append(
        f'<text x="{LEFT}" y="{axis_y}" font-size="11">0 s</text>'
        f'<text x="{WIDTH - 20}" y="{axis_y}" font-size="11" text-anchor="end">'
        f"{seconds:,} s (virtual time)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
