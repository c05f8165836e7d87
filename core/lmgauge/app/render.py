"""The app's jinja2 environment: templates in ``app/templates/`` (package data), every
``{{ value }}`` HTML-escaped (autoescape on), a missing variable an error (StrictUndefined).

Only markup lmgauge builds itself reaches a template as :class:`markupsafe.Markup`: the SVG
charts (which escape every text they draw) and :func:`json_block`, JSON that cannot end its
``<script type="application/json">`` block. Pages carry no inline script or style: the
Content-Security-Policy allows only the app's own files."""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..htmlreport.templating import json_for_script as json_block, pct  # the report's own: one way each
from ..texttable import fmt_num, fmt_val

STATIC_FILES = ("app.js", "app.css", "favicon.svg")
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}


def num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def duration(v: Any) -> str:
    """Seconds as ``45 s``, ``12 min 05 s``, ``3 h 02 min``."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
        return "-"
    s = int(round(v))
    if s < 60:
        return f"{v:.1f} s" if v < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def ci_bar(score: Any, lo: Any, hi: Any, color: str = "#2563eb") -> Markup:
    try:
        from ..htmlreport.svg import ci_bar as bar
    except Exception:  # noqa: BLE001 - the report package is being rebuilt
        return Markup("")
    return Markup(bar(score, lo, hi, color))


def idpath(run_id: Any) -> str:
    """A run id as one path segment (``/`` as ``%2F``)."""
    from urllib.parse import quote

    return quote(str(run_id), safe="")


def color_class(color: Any) -> str:
    """The CSS class of a run colour (the page allows no inline style)."""
    from .views import PALETTE

    try:
        return f"c{PALETTE.index(str(color)) % 8}"
    except ValueError:
        return "c0"


def _static_bytes(name: str) -> bytes:
    return resources.files("lmgauge.app").joinpath("static", name).read_bytes()


@lru_cache(maxsize=1)
def static_files() -> dict[str, tuple[bytes, str, str]]:
    """name → (bytes, content type, short hash): the app's assets, read once from the package."""
    out = {}
    for name in STATIC_FILES:
        data = _static_bytes(name)
        ext = name[name.rfind("."):]
        out[name] = (data, CONTENT_TYPES[ext], hashlib.sha256(data).hexdigest()[:12])
    return out


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_files()[name][2]}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("lmgauge.app", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, pct=pct, fmt_val=fmt_val, fmt_num=fmt_num, duration=duration, idpath=idpath,
                       cc=color_class)
    env.globals.update(ci_bar=ci_bar, static_url=static_url, json_block=json_block)
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
