"""Small SVG charts written by hand: a report must open without the network and without matplotlib,
and a few dozen points need no more than lines and circles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 20, 48
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


@dataclass(frozen=True)
class Point:
    """One candidate on the Pareto plot."""

    label: str
    x: float
    y: float
    pareto: bool = False
    chosen: bool = False


class _Axis:
    """Maps data values to pixels; logarithmic when the values span more than a factor of 20."""

    def __init__(self, values: Sequence[float], lo_px: float, hi_px: float, log: bool | None = None,
                 integer: bool = False) -> None:
        lo, hi = min(values), max(values)
        self.integer = integer  # ticks on whole numbers only (epochs)
        self.log = (lo > 0 and hi / lo > 20) if log is None else log
        if self.log:
            lo, hi = math.log10(lo), math.log10(hi)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        self.lo, self.hi, self.lo_px, self.hi_px = lo - pad, hi + pad, lo_px, hi_px

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.lo_px + (v - self.lo) / (self.hi - self.lo) * (self.hi_px - self.lo_px)

    def ticks(self, count: int = 5) -> list[float]:
        if self.log:
            return [10 ** e for e in range(math.floor(self.lo), math.ceil(self.hi) + 1)
                    if self.lo <= e <= self.hi] or [10 ** self.lo]
        raw = (self.hi - self.lo) / (count - 1)
        base = 10 ** math.floor(math.log10(raw))
        step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
        if self.integer:
            step = max(1, math.ceil(step))
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _frame(x: _Axis, y: _Axis, x_label: str, y_label: str) -> list[str]:
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
             'fill="#fff" stroke="#999"/>']
    for t in x.ticks():
        px = x(t)
        parts.append(f'<line x1="{px:.1f}" y1="{HEIGHT - BOTTOM}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM + 4}" '
                     f'stroke="#999"/><text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{_fmt(t)}</text>')
    for t in y.ticks():
        py = y(t)
        parts.append(f'<line x1="{LEFT - 4}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" stroke="#eee"/>'
                     f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 10}" text-anchor="middle">'
                 f'{escape(x_label)}{" (log scale)" if x.log else ""}</text>'
                 f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    return parts


def _svg(parts: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">'
            f'<title>{escape(title)}</title>{"".join(parts)}</svg>')


def pareto_svg(points: Sequence[Point], x_label: str, y_label: str, title: str) -> str:
    """Quality against latency: every candidate a dot, the Pareto front joined, the chosen one ringed."""
    if not points:
        return _svg([f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no candidate has both '
                     'values</text>'], title)
    x = _Axis([p.x for p in points], LEFT, WIDTH - RIGHT)
    y = _Axis([p.y for p in points], HEIGHT - BOTTOM, TOP, log=False)
    parts = _frame(x, y, x_label, y_label)
    front = sorted((p for p in points if p.pareto), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(f"{x(p.x):.1f},{y(p.y):.1f}" for p in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[1]}" stroke-dasharray="4 3"/>')
    for p in points:
        colour = COLOURS[1] if p.pareto else COLOURS[0]
        parts.append(f'<circle cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" r="5" fill="{colour}"/>')
        if p.chosen:
            parts.append(f'<circle cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" r="9" fill="none" stroke="#000" '
                         'stroke-width="2"/>')
        right = x(p.x) > WIDTH * 0.6  # labels of the right-hand dots go to their left, inside the frame
        parts.append(f'<text x="{x(p.x) + (-8 if right else 8):.1f}" y="{y(p.y) - 6:.1f}" '
                     f'text-anchor="{"end" if right else "start"}">{escape(p.label)}</text>')
    return _svg(parts, title)


def curves_svg(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], x_label: str, y_label: str,
               title: str) -> str:
    """Lines over epochs (one per series, each with a legend entry); a single epoch is a dot. The
    x axis is ticked on whole epochs only."""
    values = [pt for _, pts in series for pt in pts]
    if not values:
        return _svg([f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no history recorded</text>'],
                    title)
    x = _Axis([v[0] for v in values], LEFT, WIDTH - RIGHT, log=False, integer=True)
    y = _Axis([v[1] for v in values], HEIGHT - BOTTOM, TOP, log=False)
    parts = _frame(x, y, x_label, y_label)
    for i, (name, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" fill="{colour}"/>' for a, b in pts)
        parts.append(f'<rect x="{LEFT + 10}" y="{TOP + 8 + 16 * i}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{LEFT + 26}" y="{TOP + 17 + 16 * i}">{escape(name)}</text>')
    return _svg(parts, title)


def reliability_svg(series: Sequence[tuple[str, Sequence[tuple[float, float, int]]]], title: str) -> str:
    """A reliability diagram: per confidence bin, accuracy against mean confidence (one line per
    series, dots sized by the bin's share of the images), over the diagonal of perfect calibration."""
    points = [pt for _, pts in series for pt in pts]
    if not points:
        return _svg([f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no predictions recorded</text>'],
                    title)
    x = _Axis([0.0, 1.0], LEFT, WIDTH - RIGHT, log=False)
    y = _Axis([0.0, 1.0], HEIGHT - BOTTOM, TOP, log=False)
    parts = _frame(x, y, "confidence (top-1 probability)", "accuracy")
    parts.append(f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}" stroke="#999" '
                 'stroke-dasharray="4 3"/>')
    total = max(sum(n for _, _, n in pts) for _, pts in series) or 1
    for i, (name, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{x(c):.1f},{y(a):.1f}" for c, a, _ in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{x(c):.1f}" cy="{y(a):.1f}" r="{2 + 6 * math.sqrt(n / total):.1f}" '
                     f'fill="{colour}" fill-opacity="0.7"/>' for c, a, n in pts)
        parts.append(f'<rect x="{LEFT + 10}" y="{TOP + 8 + 16 * i}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{LEFT + 26}" y="{TOP + 17 + 16 * i}">{escape(name)}</text>')
    return _svg(parts, title)
