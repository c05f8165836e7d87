"""Typed perf failures of the in-process backends (transformers, lmdeploy).

Their requests fail inside the backend's own code, as a :class:`BackendError` (eval raises it;
perf marks the request failed). :class:`RequestFailed` is such an error that also says how the
failure is counted: its kind (one of the core's ``FAILURE_KINDS``) and its group in the summary.
:func:`fail_record` marks a perf record with it: ``record.fail(kind, text, group)``.
"""
from __future__ import annotations

from lmgauge.plugin import BackendError, PerfRecord


class RequestFailed(BackendError):
    """A failed request: ``kind`` (``FAILURE_KINDS``), ``group`` (how the summary counts it),
    ``message`` and ``hint`` as any :class:`BackendError`."""

    def __init__(self, kind: str, group: str, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.failure_kind = kind
        self.failure_group = group


def fail_record(record: PerfRecord, exc: BackendError) -> None:
    """Mark ``record`` failed with ``exc``: its kind and group when it is a
    :class:`RequestFailed`, else a ``client`` failure counted under its own text."""
    text = exc.line()
    record.fail(getattr(exc, "failure_kind", "client"), text, getattr(exc, "failure_group", None) or text[:80])
