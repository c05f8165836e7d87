"""Live scores of an eval that is still running: the rows report.json will hold, recomputed
from the journal's entries (per-question scores only) whenever the journal grew, with the
run's own metrics, repeats and plan (lmgauge.eval.report.build_results, the function the
runner calls at the end); and the pace (samples per minute, ETA) from the last minutes."""
from __future__ import annotations

import time
from collections import deque
from types import SimpleNamespace
from typing import Any

from ..runfolder import BenchmarkSummary, ResultRow
from .journal import EvalJournal, iter_scored

#: seconds of history the pace is measured over
PACE_WINDOW = 300.0


def run_metrics(config: dict[str, Any]) -> tuple[list[Any], str | None]:
    """The run's metrics as the runner plans them (``metric`` of config.yaml, else every
    default one; their options from the saved settings); (metrics, a note when some could
    not be made, e.g. a metric plugin that is not installed here)."""
    from ..eval.runner import plan_metrics
    from ..errors import LmgaugeError
    from ..plugins import get_manager

    pm = get_manager()
    names = config.get("metric") or []
    if isinstance(names, str):
        names = [names]
    try:
        from ..eval.api import FAMILIES

        _core, options = pm.options.split(dict(config), FAMILIES, "config.yaml")
    except Exception:  # noqa: BLE001 - a saved setting this install does not know
        options = {}
    try:
        return plan_metrics(SimpleNamespace(metric=list(names), options=options), pm), None
    except LmgaugeError as exc:
        default = plan_metrics(SimpleNamespace(metric=[], options={}), pm)
        return default, f"live scores use the default metrics: {exc.line()}"


class LiveScores:
    """Results of a journal, cached per journal version."""

    def __init__(self, config: dict[str, Any], repeats: int, planned: dict[str, int] | None):
        self.metrics, self.note = run_metrics(config)
        self.repeats = max(1, int(repeats or 1))
        self.planned = dict(planned or {})
        self._version = -1
        self._value: tuple[list[ResultRow], list[BenchmarkSummary]] = ([], [])
        self.pace: deque[tuple[float, int]] = deque()

    def results(self, journal: EvalJournal) -> tuple[list[ResultRow], list[BenchmarkSummary]]:
        from ..eval.report import build_results

        with journal.lock:
            version = journal.version
            if version == self._version:
                return self._value
            entries = list(journal.entries.values())
        value = build_results(iter_scored(entries), self.metrics, self.repeats, self.planned, None)
        self._version, self._value = version, value
        return value

    def note_progress(self, done: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not self.pace or self.pace[-1][1] != done:
            self.pace.append((now, done))
        while len(self.pace) > 2 and now - self.pace[0][0] > PACE_WINDOW:
            self.pace.popleft()

    def rate(self) -> float | None:
        """Samples per second over the window (None before two observations)."""
        if len(self.pace) < 2:
            return None
        (t0, n0), (t1, n1) = self.pace[0], self.pace[-1]
        if t1 <= t0 or n1 <= n0:
            return None
        return (n1 - n0) / (t1 - t0)

    def eta(self, done: int, total: int | None) -> float | None:
        rate = self.rate()
        if total is None or rate is None or done >= total:
            return None
        return (total - done) / rate
