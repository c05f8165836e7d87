"""Inline SVG charts generated in Python: no JavaScript library, no CDN, readable in a
screenshot. Every text that reaches the SVG is escaped."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"]
DASHES = {"p50": "", "mean": "", "p90": "7 4", "p99": "2 3", "p95": "5 3"}


@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[float, float]] = field(default_factory=list)
    dash: str = ""


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


def fmt_num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 10000:
        return f"{v / 1000:.0f}k"
    if a >= 1000:
        return f"{v / 1000:.1f}k".replace(".0k", "k")
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    if a >= 0.01:
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return f"{v:.2g}"


def fmt_val(v: float | None) -> str:
    """A value for prose (best configuration): more digits than an axis tick."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:,.1f}"
    if a >= 1:
        return f"{v:.3g}" if a < 10 else f"{v:.2f}"
    return f"{v:.3g}"


def line_chart(title: str, series: list[Series], x_label: str, y_label: str,
               width: int = 460, height: int = 270) -> str:
    """A line chart with markers; x on a log scale when it spans a decade or more (typical for
    concurrency sweeps 1, 10, 50, 100). Points carry a <title> tooltip."""
    pts = [(x, y) for s in series for x, y in s.points
           if x is not None and y is not None and not (isinstance(y, float) and math.isnan(y))]
    ml, mr, mt, mb = 66, 14, 30, 42
    pw, ph = width - ml - mr, height - mt - mb
    head = (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">'
            f'<text x="{ml}" y="18" class="ct">{_esc(title)}</text>')
    if not pts:
        return head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="cn">no data</text></svg>'
    xs = sorted({x for x, _ in pts})
    ys = [y for _, y in pts]
    log_x = xs[0] > 0 and xs[-1] / xs[0] >= 8
    if log_x:
        lx0, lx1 = math.log10(xs[0]), math.log10(xs[-1])

        def sx(x: float) -> float:
            return ml + (math.log10(x) - lx0) / ((lx1 - lx0) or 1) * pw
        xticks = xs if len(xs) <= 10 else [10 ** e for e in range(math.floor(lx0), math.ceil(lx1) + 1)]
    else:
        x0, x1 = (xs[0], xs[-1]) if xs[0] != xs[-1] else (xs[0] - 1, xs[0] + 1)
        x0 = min(x0, 0) if x0 >= 0 and x0 < (x1 - x0) else x0

        def sx(x: float) -> float:
            return ml + (x - x0) / ((x1 - x0) or 1) * pw
        xticks = xs if len(xs) <= 10 else nice_ticks(x0, x1, 6)
    yt = nice_ticks(0.0, max(ys) * 1.05 if max(ys) > 0 else 1.0, 5)
    y1 = yt[-1] or 1.0

    def sy(y: float) -> float:
        return mt + ph - (y / y1) * ph

    parts = [head]
    for t in yt:
        yy = sy(t)
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="cg"/>'
                     f'<text x="{ml - 6}" y="{yy + 4:.1f}" text-anchor="end" class="ck">{_esc(fmt_num(t))}</text>')
    for t in xticks:
        if t <= 0 and log_x:
            continue
        xx = sx(t)
        if xx < ml - 1 or xx > ml + pw + 1:
            continue
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{mt}" y2="{mt + ph}" class="cg cgx"/>'
                     f'<text x="{xx:.1f}" y="{mt + ph + 16}" text-anchor="middle" class="ck">{_esc(fmt_num(t))}</text>')
    parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" class="ca"/>'
                 f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{mt + ph}" class="ca"/>'
                 f'<text x="{ml + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" class="cl">{_esc(x_label)}'
                 f'{" (log scale)" if log_x else ""}</text>'
                 f'<text transform="translate(13 {mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle" class="cl">'
                 f'{_esc(y_label)}</text>')
    for s in series:
        good = sorted((x, y) for x, y in s.points if x is not None and y is not None
                      and not (isinstance(y, float) and math.isnan(y)) and (x > 0 or not log_x))
        if not good:
            continue
        d = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(good))
        dash = f' stroke-dasharray="{_esc(s.dash)}"' if s.dash else ""
        parts.append(f'<path d="{d}" fill="none" stroke="{_esc(s.color)}" stroke-width="2"{dash}/>')
        for x, y in good:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.2" fill="{_esc(s.color)}">'
                         f'<title>{_esc(s.label)}: {_esc(fmt_num(x))} → {_esc(fmt_num(y))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


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
