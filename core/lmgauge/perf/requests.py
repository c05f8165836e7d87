"""Turning prompt text (or chat messages) into a perf request with the run's settings.

Shared by the perf datasets and ``lmgauge perf --prompt``; the sampling parameters come from
:meth:`lmgauge.interfaces.RequestSettings.params` (``--min-tokens`` sent the way vLLM expects).
"""
from __future__ import annotations

from ..interfaces import RequestSettings
from ..types import GenerationRequest


def make_request(text: str | None, settings: RequestSettings, index: int,
                 messages: list[dict[str, str]] | None = None) -> GenerationRequest:
    """A request of the run: chat ``messages`` (default: one user message holding ``text``)
    and the plain ``text`` for completions endpoints."""
    if messages is None:
        messages = [{"role": "user", "content": text or ""}]
    elif text is None:
        text = "\n".join(str(m.get("content", "")) for m in messages)
    return GenerationRequest(messages=messages, prompt=text, params=settings.params(), id=str(index))
