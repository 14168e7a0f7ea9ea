"""Small dependency-free SVG charts for artifacts and report files.

A Prefect markdown artifact can show an image, and a saved ``.svg`` opens in any
browser; drawing a line chart is a few dozen lines, not worth a plotting library.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from html import escape

PALETTE = ("#ff9900", "#0078d4", "#34a853", "#9c27b0", "#e53935", "#607d8b")


def _nice_ceiling(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    exp = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def line_chart_svg(
    series: Mapping[str, Sequence[tuple[date, float]]],
    *,
    title: str,
    unit: str = "",
    width: int = 760,
    height: int = 300,
    marks: Sequence[tuple[date, str]] = (),
) -> str:
    """An SVG line chart with one line per series, a y grid, dates and a legend.

    Args:
        series: name -> points ``(day, value)``; days need not align across series.
        title: chart title.
        unit: prefix for y labels (e.g. ``"$"``).
        width: image width in pixels.
        height: image height in pixels.
        marks: days to highlight with a dashed vertical line and a label (anomalies).

    Returns:
        The SVG document as text.

    Example:
        ```python
        svg = line_chart_svg({"aws": [(date(2026, 10, 1), 120.0)]}, title="Daily cost")
        ```
    """
    left, right, top, bottom = 64, 16, 36, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    days = sorted({d for pts in series.values() for d, _ in pts} | {d for d, _ in marks})
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not days:
        out.append(f'<text x="{left}" y="{top + 20}">no data</text></svg>')
        return "\n".join(out)
    first, span = days[0], max((days[-1] - days[0]).days, 1)
    y_max = _nice_ceiling(max((v for pts in series.values() for _, v in pts), default=0))

    def x(d: date) -> float:
        return left + plot_w * (d - first).days / span

    def y(v: float) -> float:
        return top + plot_h * (1 - max(v, 0) / y_max)

    for i in range(5):
        value = y_max * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{escape(unit)}{value:,.0f}</text>"
        )
    step = max(1, len(days) // 8)
    for d in days[::step]:
        out.append(
            f'<text x="{x(d):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
            f"{d.strftime('%b %d')}</text>"
        )
    for i, (d, label) in enumerate(marks):  # labels stagger so close marks stay readable
        anchor = "end" if x(d) > left + plot_w * 0.7 else "start"
        shift = -3 if anchor == "end" else 3
        out.append(
            f'<line x1="{x(d):.1f}" x2="{x(d):.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="#e53935" stroke-dasharray="4 3"/>'
            f'<text x="{x(d) + shift:.1f}" y="{top + 12 + 13 * i}" fill="#e53935" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in sorted(pts))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        lx = left + 10 + i * 110
        out.append(
            f'<rect x="{lx}" y="{height - 18}" width="12" height="4" fill="{color}"/>'
            f'<text x="{lx + 16}" y="{height - 13}">{escape(name)}</text>'
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/></svg>'
    )
    return "\n".join(out)


def svg_data_uri(svg: str) -> str:
    """``data:`` URI of an SVG, to embed it in a markdown artifact as an image."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


SOURCE_COLORS = {
    "kubernetes": "#326ce5",
    "sentry": "#7b3fa0",
    "cloudwatch": "#ff9900",
    "grafana": "#f05a28",
    "file": "#607d8b",
}


def timeline_svg(
    rows: Sequence[tuple[str, Sequence[tuple[datetime, str, str]]]],
    *,
    title: str,
    spans: Sequence[tuple[datetime, datetime, str]] = (),
    width: int = 900,
    row_height: int = 22,
) -> str:
    """An SVG timeline: one row per entity, one dot per signal, shaded incident spans.

    Args:
        rows: ``(row label, [(time, source, tooltip), ...])`` in display order.
        title: chart title.
        spans: ``(start, end, label)`` periods to shade (incidents).
        width: image width in pixels.
        row_height: pixels per row.

    Returns:
        The SVG document as text.

    Example:
        ```python
        svg = timeline_svg([("service:api", [(t0, "sentry", "new issue")])], title="Incident")
        ```
    """
    left, right, top, bottom = 210, 20, 40, 44
    plot_w = width - left - right
    height = top + bottom + row_height * max(len(rows), 1)
    times = [t for _, pts in rows for t, _, _ in pts] + [t for s in spans for t in s[:2]]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not times:
        out.append(f'<text x="{left}" y="{top + 16}">no signals</text></svg>')
        return "\n".join(out)
    first = min(times)
    span_s = max((max(times) - first).total_seconds(), 60.0)

    def x(t: datetime) -> float:
        return left + plot_w * (t - first).total_seconds() / span_s

    plot_bottom = top + row_height * len(rows)
    for start, end, label in spans:
        w = max(x(end) - x(start), 3)
        out.append(
            f'<rect x="{x(start):.1f}" y="{top - 4}" width="{w:.1f}" '
            f'height="{plot_bottom - top + 4}" fill="#e53935" fill-opacity="0.08" '
            f'stroke="#e53935" stroke-opacity="0.4"/>'
            f'<text x="{x(start) + 2:.1f}" y="{top - 8}" fill="#e53935">{escape(label)}</text>'
        )
    for i, (label, points) in enumerate(rows):
        y = top + row_height * i + row_height / 2
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label[:32])}</text>'
        )
        for t, source, tip in points:
            color = SOURCE_COLORS.get(source, "#333")
            out.append(
                f'<circle cx="{x(t):.1f}" cy="{y:.1f}" r="4.5" fill="{color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    for k in range(6):
        t = first + (max(times) - first) * k / 5
        out.append(
            f'<text x="{x(t):.1f}" y="{plot_bottom + 16}" text-anchor="middle">'
            f"{t.strftime('%H:%M')}</text>"
        )
    for i, (source, color) in enumerate(SOURCE_COLORS.items()):
        lx = left + i * 110
        out.append(
            f'<circle cx="{lx}" cy="{height - 12}" r="4.5" fill="{color}"/>'
            f'<text x="{lx + 8}" y="{height - 8}">{source}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
