"""User-facing errors: one clear line (what went wrong, where, how to fix).

Anything raised as a :class:`LmgaugeError` is printed by the CLI as a single line
``lmgauge: error: <message>`` with a non-zero exit code and no traceback.

Exit codes (docs/outputs.md): 0 the run measured what it should; 1 an internal error or an
exporter that failed; 2 bad input (flags, files, settings, plugins: :class:`LmgaugeError`);
3 the backend failed (server unreachable, model not served, every request refused:
:class:`BackendError`); 4 the run finished but measured too little (:class:`TooLittleMeasured`:
fewer than half of its samples have a verdict, or of its requests succeeded; everything
measured is in the run folder); 5 a regression gate of ``lmgauge compare --fail-if`` fired
(lmgauge.perf.compare); 130 interrupted (Ctrl-C).
"""
from __future__ import annotations


class LmgaugeError(Exception):
    """An error the user can fix. ``hint`` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class ConfigError(LmgaugeError):
    """Bad flag, config file or option value."""


class PluginError(LmgaugeError):
    """Unknown name, name collision, broken plugin."""


class DataError(LmgaugeError):
    """A dataset file or hub dataset that cannot be read."""


class BackendError(LmgaugeError):
    """A backend request failed.

    ``retryable`` tells the runner whether a retry with backoff may succeed
    (HTTP 429/5xx, connection errors, timeouts) or not (HTTP 4xx, bad model). ``unavailable``
    means no endpoint of the backend can be reached at all (the runner stops the run after a
    bounded number of these in a row, instead of failing sample after sample).
    """

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None, *, retryable: bool = False,
                 status: int | None = None, unavailable: bool = False):
        super().__init__(message, hint)
        self.retryable = retryable
        self.status = status
        self.unavailable = unavailable


class TooLittleMeasured(LmgaugeError):
    """The run ended, its folder holds what was measured, but too little of it succeeded to
    stand for the run (see :data:`MIN_SUCCESS`)."""

    exit_code = 4


#: the share of a run's samples (eval) or requests (perf) that must succeed for exit code 0
MIN_SUCCESS = 0.5
