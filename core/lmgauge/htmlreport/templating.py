"""The report's jinja2 environment: templates in ``htmlreport/templates/`` (package data),
every ``{{ value }}`` HTML-escaped (autoescape on for every template), a missing variable an
error (StrictUndefined), and the number formats the tables use as filters.

Only markup built by lmgauge itself reaches a template as :class:`markupsafe.Markup`: the
inline CSS/JS, the JSON data block (:func:`json_for_script`) and the SVG charts of
:mod:`.svg`, which escape every text they draw."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from .svg import fmt_val


def json_for_script(data: Any) -> Markup:
    """JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and
    the JS line separators become ``\\u`` escapes, so ``</script>`` and ``<!--`` cannot occur."""
    text = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str).decode("utf-8")
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                  .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def num(v: Any, digits: int = 3) -> str:
    """A table number with thousands separators; ``-`` for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}"
    return str(v)


def pct(v: Any, digits: int = 1) -> str:
    """A share (0..1) as a percentage; ``-`` for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    v = float(v)
    return "<0.1%" if 0 < v < 0.001 else f"{100 * v:.{digits}f}%"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("lmgauge.htmlreport", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, pct=pct, fmt_val=fmt_val)
    return env


def render(name: str, **context: Any) -> Markup:
    """Render one template; the result is markup (for inclusion in another template)."""
    return Markup(environment().get_template(name).render(**context))
