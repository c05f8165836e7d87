"""Inline SVG charts generated in Python: no JavaScript library, no CDN, readable in a
screenshot. Every text that reaches the SVG is escaped."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from ..texttable import fmt_num, fmt_val  # noqa: F401  (re-exported for the views)

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"]
DASHES = {"p50": "", "mean": "", "p90": "7 4", "p99": "2 3", "p95": "5 3"}


@dataclass
class Series:
    """One line of a chart. ``style``: ``line`` (path and markers) or ``dots`` (markers only,
    a scatter); ``key`` names it in the SVG (``data-series``)."""

    label: str
    color: str
    points: list[tuple[float, float]] = field(default_factory=list)
    dash: str = ""
    style: str = "line"
    key: str = ""


def _esc(text: object) -> str:
    return escape(str(text), quote=True)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(v, 10))
        v += step
    return ticks


class _Frame:
    """The plot area of one chart: scales, grid, axes and their labels."""

    ml, mr, mt, mb = 66, 14, 30, 42

    def __init__(self, title: str, width: int, height: int, cls: str = "chart"):
        self.width, self.height = width, height
        self.pw, self.ph = width - self.ml - self.mr, height - self.mt - self.mb
        self.parts = [f'<svg class="{_esc(cls)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
                      f'width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">'
                      f'<text x="{self.ml}" y="18" class="ct">{_esc(title)}</text>']
        self.log_x = False
        self.x0, self.x1, self.y1 = 0.0, 1.0, 1.0

    def empty(self) -> str:
        return "".join(self.parts) + (f'<text x="{self.width / 2}" y="{self.height / 2}" text-anchor="middle" '
                                      'class="cn">no data</text></svg>')

    def sx(self, x: float) -> float:
        if self.log_x:
            lx0, lx1 = math.log10(self.x0), math.log10(self.x1)
            return self.ml + (math.log10(x) - lx0) / ((lx1 - lx0) or 1) * self.pw
        return self.ml + (x - self.x0) / ((self.x1 - self.x0) or 1) * self.pw

    def sy(self, y: float) -> float:
        return self.mt + self.ph - (min(max(y, 0.0), self.y1) / self.y1) * self.ph

    def axes(self, xs: list[float], y_max: float, x_label: str, y_label: str, *, log_x: bool | None = None,
             x_from_zero: bool = False) -> None:
        """Scales for these x values and 0..y_max (rounded up to a tick), then grid and axes.
        ``log_x`` None: log scale when x spans a decade or more (concurrency 1, 10, 50, 100)."""
        xs = sorted(set(xs))
        self.log_x = xs[0] > 0 and xs[-1] / xs[0] >= 8 if log_x is None else log_x
        if self.log_x:
            self.x0, self.x1 = xs[0], xs[-1]
            lx0, lx1 = math.log10(xs[0]), math.log10(xs[-1])
            xticks = xs if len(xs) <= 10 else [10 ** e for e in range(math.floor(lx0), math.ceil(lx1) + 1)]
        else:
            x0, x1 = (xs[0], xs[-1]) if xs[0] != xs[-1] else (xs[0] - 1, xs[0] + 1)
            if x_from_zero or (0 <= x0 < (x1 - x0)):
                x0 = min(x0, 0.0)
            self.x0, self.x1 = x0, x1
            xticks = xs if len(xs) <= 10 and not x_from_zero else nice_ticks(x0, x1, 6)
        yt = nice_ticks(0.0, y_max if y_max > 0 else 1.0, 5)
        self.y1 = yt[-1] or 1.0
        ml, mt, pw, ph = self.ml, self.mt, self.pw, self.ph
        for t in yt:
            yy = self.sy(t)
            self.parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="cg"/>'
                              f'<text x="{ml - 6}" y="{yy + 4:.1f}" text-anchor="end" class="ck">{_esc(fmt_num(t))}</text>')
        for t in xticks:
            if t <= 0 and self.log_x:
                continue
            xx = self.sx(t)
            if xx < ml - 1 or xx > ml + pw + 1:
                continue
            self.parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{mt}" y2="{mt + ph}" class="cg cgx"/>'
                              f'<text x="{xx:.1f}" y="{mt + ph + 16}" text-anchor="middle" class="ck">{_esc(fmt_num(t))}</text>')
        self.parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" class="ca"/>'
                          f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{mt + ph}" class="ca"/>'
                          f'<text x="{ml + pw / 2:.1f}" y="{self.height - 6}" text-anchor="middle" class="cl">{_esc(x_label)}'
                          f'{" (log scale)" if self.log_x else ""}</text>'
                          f'<text transform="translate(13 {mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle" class="cl">'
                          f'{_esc(y_label)}</text>')

    def usable(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return sorted((x, y) for x, y in points if x is not None and y is not None
                      and not (isinstance(y, float) and math.isnan(y)) and (x > 0 or not self.log_x))

    def series(self, s: Series, markers: bool = True, tips: bool = True) -> None:
        good = self.usable(s.points)
        if not good:
            return
        key = f' data-series="{_esc(s.key)}"' if s.key else ""
        color = _esc(s.color)
        if s.style != "dots":
            d = " ".join(f"{'M' if i == 0 else 'L'}{self.sx(x):.1f},{self.sy(y):.1f}" for i, (x, y) in enumerate(good))
            dash = f' stroke-dasharray="{_esc(s.dash)}"' if s.dash else ""
            self.parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}{key}/>')
        if s.style == "dots":
            self.parts.append(f'<g class="dots"{key} fill="{color}" fill-opacity="0.55">' + "".join(
                f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="2"/>' for x, y in good) + "</g>")
        elif markers:
            for x, y in good:
                tip = f'<title>{_esc(s.label)}: {_esc(fmt_num(x))} → {_esc(fmt_num(y))}</title>' if tips else ""
                self.parts.append(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="3.2" fill="{color}">{tip}</circle>')

    def done(self) -> str:
        return "".join(self.parts) + "</svg>"


def _y_max(points: list[tuple[float, float]]) -> float:
    ys = [y for _, y in points]
    return max(ys) * 1.05 if ys and max(ys) > 0 else 1.0


def _points(series: list[Series]) -> list[tuple[float, float]]:
    return [(x, y) for s in series for x, y in s.points
            if x is not None and y is not None and not (isinstance(y, float) and math.isnan(y))]


def line_chart(title: str, series: list[Series], x_label: str, y_label: str,
               width: int = 460, height: int = 270) -> str:
    """A line chart with markers; x on a log scale when it spans a decade or more (typical for
    concurrency sweeps 1, 10, 50, 100). Points carry a <title> tooltip."""
    frame = _Frame(title, width, height)
    pts = _points(series)
    if not pts:
        return frame.empty()
    frame.axes([x for x, _ in pts], _y_max(pts), x_label, y_label)
    for s in series:
        frame.series(s)
    return frame.done()


MARKERS_UP_TO = 40  # a time series with more points is drawn as a line without markers


def time_chart(title: str, series: list[Series], y_label: str, x_max: float, y_max: float | None = None,
               width: int = 460, height: int = 230) -> str:
    """Series over seconds from a level's start (x from 0 to ``x_max``, shared by the charts of
    one level); ``y_max`` fixes the y range (100 for percentages). Series of style ``dots``
    are scatter plots (TTFT of each request)."""
    frame = _Frame(title, width, height, cls="chart timechart")
    pts = _points(series)
    if not pts:
        return frame.empty()
    frame.axes([0.0, max(x_max, max(x for x, _ in pts))], y_max or _y_max(pts), "seconds from the level's start",
               y_label, log_x=False, x_from_zero=True)
    for s in series:
        few = len(s.points) <= MARKERS_UP_TO
        frame.series(s, markers=few, tips=few)
    return frame.done()


@dataclass
class Probe:
    """One probe of an SLA search: its load, the objective's measured value, whether the probe
    met every objective."""

    load: float
    value: float | None
    met: bool


def frontier_chart(title: str, probes: list[Probe], limit: float, limit_label: str, x_label: str, y_label: str,
                   best: float | None, width: int = 460, height: int = 270) -> str:
    """An objective's measured value against load: the probes in load order (met: filled,
    missed: hollow), the limit as a dashed horizontal line, the best load ringed."""
    frame = _Frame(title, width, height, cls="chart frontier")
    pts = [(p.load, p.value) for p in probes if p.value is not None and not math.isnan(p.value)]
    if not pts:
        return frame.empty()
    frame.axes([x for x, _ in pts], max(_y_max(pts), limit * 1.1), x_label, y_label)
    frame.series(Series("measured", "#64748b", pts), markers=False)  # the probes are marked below
    yy = frame.sy(limit)
    frame.parts.append(f'<line x1="{frame.ml}" x2="{frame.ml + frame.pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="limit" '
                       f'stroke="#dc2626" stroke-width="1.5" stroke-dasharray="6 4"/>'
                       f'<text x="{frame.ml + 4}" y="{yy - 5:.1f}" class="ck">limit {_esc(limit_label)}</text>')
    for p in sorted(probes, key=lambda p: p.load):
        if p.value is None or math.isnan(p.value) or (frame.log_x and p.load <= 0):
            continue
        cx, cy = frame.sx(p.load), frame.sy(p.value)
        state = "met" if p.met else "missed"
        fill = "#16a34a" if p.met else "#ffffff"
        tip = f'<title>{_esc(fmt_num(p.load))}: {_esc(fmt_num(p.value))} ({state})</title>'
        frame.parts.append(f'<circle class="probe {state}" cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{fill}" '
                           f'stroke="{"#16a34a" if p.met else "#dc2626"}" stroke-width="2">{tip}</circle>')
        if best is not None and p.load == best:
            frame.parts.append(f'<circle class="best" cx="{cx:.1f}" cy="{cy:.1f}" r="9" fill="none" stroke="#1e293b" '
                               f'stroke-width="1.5"/><text x="{cx:.1f}" y="{cy + 22:.1f}" text-anchor="middle" '
                               f'class="cl">best {_esc(fmt_num(best))}</text>')
    return frame.done()


def ci_bar(score: float | None, lo: float | None, hi: float | None, color: str = "#2563eb",
           width: int = 96, height: int = 14) -> str:
    """A tiny horizontal bar: the score on a 0–1 scale with its confidence interval."""
    if score is None:
        return ""
    def px(v: float) -> float:
        return 1 + max(0.0, min(1.0, v)) * (width - 2)
    out = [f'<svg class="cibar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" aria-hidden="true">'
           f'<rect x="0" y="{height / 2 - 3}" width="{width}" height="6" rx="3" class="cib"/>'
           f'<rect x="0" y="{height / 2 - 3}" width="{px(score):.1f}" height="6" rx="3" fill="{_esc(color)}" opacity="0.35"/>']
    if lo is not None and hi is not None:
        out.append(f'<line x1="{px(lo):.1f}" x2="{px(hi):.1f}" y1="{height / 2}" y2="{height / 2}" stroke="{_esc(color)}" stroke-width="2"/>'
                   f'<line x1="{px(lo):.1f}" x2="{px(lo):.1f}" y1="{height / 2 - 4}" y2="{height / 2 + 4}" stroke="{_esc(color)}" stroke-width="1.5"/>'
                   f'<line x1="{px(hi):.1f}" x2="{px(hi):.1f}" y1="{height / 2 - 4}" y2="{height / 2 + 4}" stroke="{_esc(color)}" stroke-width="1.5"/>')
    out.append(f'<circle cx="{px(score):.1f}" cy="{height / 2}" r="3.5" fill="{_esc(color)}"/></svg>')
    return "".join(out)


@dataclass
class Point:
    """One point of a trade-off chart: a sweep variant's mean tokens (x) and score (y) with the
    score's 95% CI (``lo``..``hi``) and its label."""

    x: float | None
    y: float | None
    label: str
    lo: float | None = None
    hi: float | None = None
    color: str = "#2563eb"


def frontier_points(points: list[Point]) -> list[Point]:
    """The points no other point beats on both axes (a higher score for no more tokens), in
    order of tokens: the accuracy-against-length frontier."""
    good = sorted((p for p in points if p.x is not None and p.y is not None), key=lambda p: (p.x, -p.y))
    out: list[Point] = []
    for p in good:
        if not out or p.y > out[-1].y:
            out.append(p)
    return out


def tradeoff_chart(title: str, points: list[Point], x_label: str = "mean completion tokens",
                   y_label: str = "score", width: int = 460, height: int = 300) -> str:
    """Score against mean tokens: a point per variant with its 95% CI as a vertical bar and its
    label, the frontier (:func:`frontier_points`) joined by a dashed line. The score axis runs
    from 0 to 1 (or the highest value above it), the token axis from 0, so that distances show
    proportions. Points that fall on one spot get their labels stacked."""
    frame = _Frame(title, width, height, cls="chart tradeoff")
    pts = [p for p in points if p.x is not None and p.y is not None and not math.isnan(p.y) and not math.isnan(p.x)]
    if not pts:
        return frame.empty()
    top = max([1.0] + [p.hi for p in pts if p.hi is not None] + [p.y for p in pts])
    frame.axes([p.x for p in pts], top, x_label, y_label, log_x=False, x_from_zero=True)
    front = frontier_points(pts)
    if len(front) > 1:
        d = " ".join(f"{'M' if i == 0 else 'L'}{frame.sx(p.x):.1f},{frame.sy(p.y):.1f}" for i, p in enumerate(front))
        frame.parts.append(f'<path d="{d}" fill="none" stroke="#64748b" stroke-width="1.5" stroke-dasharray="5 4" '
                           'class="frontier-line"/>')
    stacked: dict[tuple[int, int], int] = {}
    for p in pts:
        cx, cy = frame.sx(p.x), frame.sy(p.y)
        color = _esc(p.color)
        if p.lo is not None and p.hi is not None:
            y0, y1 = frame.sy(p.lo), frame.sy(p.hi)
            frame.parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" stroke="{color}" '
                               f'stroke-width="1.5" class="ci"/>'
                               f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{y0:.1f}" y2="{y0:.1f}" stroke="{color}"/>'
                               f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{y1:.1f}" y2="{y1:.1f}" stroke="{color}"/>')
        on_front = any(p is f for f in front)
        tip = (f'<title>{_esc(p.label)}: score {_esc(fmt_num(p.y))}, {_esc(fmt_num(p.x))} tokens'
               f'{" (on the frontier)" if on_front else ""}</title>')
        frame.parts.append(f'<circle class="variant{" front" if on_front else ""}" cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" '
                           f'fill="{color}">{tip}</circle>')
        spot = (round(cx / 6), round(cy / 6))
        k = stacked.get(spot, 0)
        stacked[spot] = k + 1
        anchor = "end" if cx > frame.ml + frame.pw * 0.7 else "start"
        dx = -8 if anchor == "end" else 8
        ly = cy - 6 + 12 * k if cy - 6 > frame.mt + 4 else cy + 16 + 12 * k  # under a point at the top
        frame.parts.append(f'<text x="{cx + dx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" class="ck label">'
                           f'{_esc(p.label)}</text>')
    return frame.done()
