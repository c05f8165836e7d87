"""The one grid-table renderer for terminal output (eval scores, perf percentiles and sweep
summaries, `lmgauge report`)."""
from __future__ import annotations

import math
import re
import unicodedata
from typing import Any, Iterable


def display_width(text: str) -> int:
    """Terminal columns of ``text`` (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clean_cell(value: Any) -> str:
    """One line, no control characters (terminal escapes in model names are not executed)."""
    text = "" if value is None else str(value)
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text)


def grid_table(header: list[str], rows: list[list[Any]], right: Iterable[int] = (),
               rule_between_rows: bool = False) -> str:
    """``+---+`` grid with a ``===`` rule under the header; columns in ``right`` are
    right-aligned; ``rule_between_rows`` draws a rule after every row."""
    right = set(right)
    header = [clean_cell(h) for h in header]
    rows = [[clean_cell(c) for c in r] for r in rows]
    widths = [max([display_width(h)] + [display_width(r[i]) for r in rows]) for i, h in enumerate(header)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(cells: list[str]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            pad = " " * (w - display_width(c))
            out.append(pad + c if i in right else c + pad)
        return "| " + " | ".join(out) + " |"

    lines = [sep, fmt(header), sep.replace("-", "=")]
    for r in rows:
        lines.append(fmt(r))
        if rule_between_rows:
            lines.append(sep)
    if not (rule_between_rows and rows):
        lines.append(sep)
    return "\n".join(lines)


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
