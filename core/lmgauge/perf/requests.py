"""Turning prompt text (or chat messages) into a perf request with the run's settings.

Shared by the perf datasets and ``lmgauge perf --prompt``. ``--min-tokens`` is sent the way
vLLM expects: ``min_tokens`` plus ``ignore_eos`` so the output length is exact.
"""
from __future__ import annotations

from typing import Any

from ..types import GenerationParams, GenerationRequest


def make_request(text: str | None, options: dict[str, Any], index: int,
                 messages: list[dict[str, str]] | None = None) -> GenerationRequest:
    extra = dict(options.get("extra_args") or {})
    if options.get("min_tokens"):
        # vLLM's names: generate at least min_tokens; ignore_eos so the length is exact
        extra.setdefault("min_tokens", int(options["min_tokens"]))
        extra.setdefault("ignore_eos", True)
    params = GenerationParams(max_tokens=options.get("max_tokens"), temperature=options.get("temperature"),
                              extra_body=extra, stream=bool(options.get("stream", True)))
    if messages is None:
        messages = [{"role": "user", "content": text or ""}]
    elif text is None:
        text = "\n".join(str(m.get("content", "")) for m in messages)
    return GenerationRequest(messages=messages, prompt=text, params=params, id=str(index))
