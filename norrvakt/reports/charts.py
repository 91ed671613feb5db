"""Charts of the reports as SVG images, drawn here (no plotting library, no browser): bars
per day, horizontal bars per category, and this period against the one before. The report
embeds each as ``<img src="data:image/svg+xml;base64,…">``, which WeasyPrint draws into the
PDF and every mail client shows in the HTML.

    svg = day_bars([("01", 120), ("02", 98)], colour=EVENTS_COLOUR)
    uri = data_uri(svg)
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from xml.sax.saxutils import escape

EVENTS_COLOUR = "#0b5fa5"
PREVIOUS_COLOUR = "#b0bec5"
FONT = 'font-family="DejaVu Sans, sans-serif"'
SEVERITY_COLOURS = {
    "critical": "#c62828",
    "high": "#d2691e",
    "medium": "#b8860b",
    "low": "#2e7d32",
    "informational": "#90a4ae",
}


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _nice_max(value: float) -> float:
    """A round top for the axis: 1, 2, 5 × 10^n at or above ``value``."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for m in (1, 2, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def _svg(width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">' + "".join(body) + "</svg>"
    )


def day_bars(
    days: Sequence[tuple[str, int]], *, colour: str = EVENTS_COLOUR, reference: float | None = None,
    width: int = 640, height: int = 170,
) -> str:  # fmt: skip
    """One bar per day (label under every few), and a dashed line at ``reference`` (the
    previous period's daily mean) when given."""
    left, bottom, top = 48, 22, 8
    plot_w, plot_h = width - left - 6, height - bottom - top
    peak = _nice_max(max([n for _d, n in days] + [reference or 0, 1]))
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 6}" y2="{y:.1f}" stroke="#dde3ea"/>')
        body.append(
            f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="9" text-anchor="end" {FONT} fill="#5a6778">'
            f"{_short(peak * frac)}</text>"
        )
    slot = plot_w / max(1, len(days))
    every = max(1, len(days) // 10)
    for i, (label, n) in enumerate(days):
        h = plot_h * n / peak
        x = left + i * slot + slot * 0.12
        body.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.76:.1f}" height="{h:.1f}" '
            f'fill="{colour}"/>'
        )
        if i % every == 0:
            body.append(
                f'<text x="{x + slot * 0.38:.1f}" y="{height - 8}" font-size="9" text-anchor="middle" {FONT} '
                f'fill="#5a6778">{escape(label)}</text>'
            )
    if reference is not None:
        y = top + plot_h * (1 - reference / peak)
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 6}" y2="{y:.1f}" stroke="#1b2430" '
            f'stroke-width="1.2" stroke-dasharray="5,3"/>'
        )
    return _svg(width, height, body)


def hbars(rows: Sequence[tuple[str, int, str]], *, width: int = 300, row_h: int = 16) -> str:
    """A horizontal bar per (label, value, colour), value printed at its end."""
    label_w = 130
    rows = list(rows) or [("–", 0, PREVIOUS_COLOUR)]
    height = row_h * len(rows) + 6
    peak = max([n for _l, n, _c in rows] + [1])
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for i, (label, n, colour) in enumerate(rows):
        y = 3 + i * row_h
        w = (width - label_w - 40) * n / peak
        body.append(
            f'<text x="{label_w - 5}" y="{y + row_h * 0.7:.1f}" font-size="9" text-anchor="end" {FONT} '
            f'fill="#1b2430">{escape(label)}</text>'
        )
        body.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" fill="{colour}"/>')
        body.append(
            f'<text x="{label_w + w + 4:.1f}" y="{y + row_h * 0.7:.1f}" font-size="9" {FONT} '
            f'fill="#1b2430">{n}</text>'
        )
    return _svg(width, height, body)


def pair_bars(rows: Sequence[tuple[str, int, int]], *, width: int = 640, row_h: int = 18) -> str:
    """Per row (label, this period, the one before): two thin bars, this period on top."""
    label_w = 110
    rows = list(rows) or [("–", 0, 0)]
    height = row_h * len(rows) + 6
    peak = max([max(a, b) for _l, a, b in rows] + [1])
    scale = (width - label_w - 60) / peak
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for i, (label, now, before) in enumerate(rows):
        y = 3 + i * row_h
        body.append(
            f'<text x="{label_w - 5}" y="{y + row_h * 0.65:.1f}" font-size="9" text-anchor="end" {FONT} '
            f'fill="#1b2430">{escape(label)}</text>'
        )
        body.append(
            f'<rect x="{label_w}" y="{y + 1}" width="{now * scale:.1f}" height="{row_h * 0.42:.1f}" '
            f'fill="{EVENTS_COLOUR}"/>'
        )
        body.append(
            f'<rect x="{label_w}" y="{y + 1 + row_h * 0.44:.1f}" width="{before * scale:.1f}" '
            f'height="{row_h * 0.36:.1f}" fill="{PREVIOUS_COLOUR}"/>'
        )
        body.append(
            f'<text x="{label_w + max(now, before) * scale + 4:.1f}" y="{y + row_h * 0.65:.1f}" '
            f'font-size="9" {FONT} fill="#1b2430">{_short(now)}</text>'
        )
    return _svg(width, height, body)


def _short(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} M".replace(".0 ", " ")
    if n >= 10_000:
        return f"{n / 1000:.0f} k"
    return f"{n:.0f}"
