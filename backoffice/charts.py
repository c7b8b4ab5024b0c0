"""Charts drawn as SVG on the server: no JavaScript, readable without colour (each series has
its own dash pattern), and described for screen readers (title, desc, and a data table next to
each chart in the page)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 1000, 280
LEFT, RIGHT, TOP, BOTTOM = 60, 40, 16, 48


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | int | Decimal]
    css: str  # a class of static/css/backoffice.css: bo-s1 .. bo-s4


def nice_max(value: float) -> float:
    """The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that is at
    least ``value`` (1 for 0), so the four grid lines fall on readable values."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return float(candidate)
    return float(10 ** (exponent + 1))


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}" if value != int(value) else f"{int(value):,}"


def line_chart(
    *, title: str, labels: Sequence[date], series: Sequence[Series], unit: str = ""
) -> SafeString:
    """Daily values as lines (one point per day; a day with nothing is a zero)."""
    n = len(labels)
    peak = max((float(v) for s in series for v in s.values), default=0.0)
    top = nice_max(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * float(v) / top

    parts = [
        _open(title, f"{title}, {labels[0]:%d %b %Y} to {labels[-1]:%d %b %Y}" if labels else title)
    ]
    for k in range(5):
        value = top * k / 4
        parts.append(
            f'<line class="bo-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="bo-tick" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{escape(_fmt(value))}</text>'
        )
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        parts.append(
            f'<text class="bo-tick" x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">'
            f"{labels[i]:%d %b}</text>"
        )
    for s in series:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        parts.append(
            f'<polyline class="bo-line {escape(s.css)}" points="{points}"><title>{escape(s.name)}</title></polyline>'
        )
        if n <= 31:
            for i, v in enumerate(s.values):
                parts.append(
                    f'<circle class="bo-dot {escape(s.css)}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3">'
                    f"<title>{escape(s.name)} {labels[i]:%d %b}: {escape(_fmt(float(v)))}{escape(unit)}</title></circle>"
                )
    parts.append(_legend(series))
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(
    *,
    title: str,
    rows: Sequence[tuple[str, float | None, str]],
    maximum: float = 1.0,
    percent: bool = True,
) -> SafeString:
    """Horizontal bars, one per row (label, value or None, note shown after the bar)."""
    row_h, label_w = 30, 260
    height = TOP + row_h * max(1, len(rows)) + 16
    plot_w = WIDTH - label_w - 330
    parts = [_open(title, title, height=height)]
    for i, (label, value, note) in enumerate(rows):
        y0 = TOP + i * row_h
        parts.append(
            f'<text class="bo-label" x="{label_w - 8}" y="{y0 + 18}" text-anchor="end">{escape(label[:34])}</text>'
        )
        if value is None:
            parts.append(
                f'<text class="bo-tick" x="{label_w}" y="{y0 + 18}">no finished jobs</text>'
            )
            continue
        w = plot_w * max(0.0, min(float(value), maximum)) / maximum
        text = f"{value * 100:.0f}%" if percent else _fmt(value)
        parts.append(
            f'<rect class="bo-bar" x="{label_w}" y="{y0 + 5}" width="{w:.1f}" height="{row_h - 10}">'
            f"<title>{escape(label)}: {escape(text)}</title></rect>"
            f'<text class="bo-value" x="{label_w + w + 6:.1f}" y="{y0 + 18}">{escape(text)} {escape(note)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _open(title: str, desc: str, *, height: int = HEIGHT) -> str:
    return (
        f'<svg class="bo-chart" viewBox="0 0 {WIDTH} {height}" role="img" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title><desc>{escape(desc)}</desc>'
    )


def _legend(series: Sequence[Series]) -> str:
    parts, x0 = [], LEFT
    for s in series:
        parts.append(
            f'<line class="bo-line {escape(s.css)}" x1="{x0}" x2="{x0 + 22}" y1="{HEIGHT - 10}" y2="{HEIGHT - 10}"/>'
            f'<text class="bo-legend" x="{x0 + 28}" y="{HEIGHT - 6}">{escape(s.name)}</text>'
        )
        x0 += 48 + 9 * len(s.name)
    return "".join(parts)
