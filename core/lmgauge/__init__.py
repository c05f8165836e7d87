"""lmgauge: evaluate reasoning models and load-test inference servers, through plugins."""
from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl
from .version import __version__

__all__ = ["__version__", "hookimpl", "evaluate"]


def evaluate(**kwargs: Any):
    """Run an eval from Python; takes the same settings as ``lmgauge eval`` (flag names with
    underscores, e.g. ``evaluate(backend="openai", base_url=..., model=..., benchmark=["aime24"])``)
    and returns the :class:`lmgauge.eval.report.Report`."""
    from .eval.api import evaluate as _evaluate

    return _evaluate(**kwargs)
