"""Flag parsing helpers shared by the ``eval`` and ``perf`` commands (plugin-declared options
live in options.py)."""
from __future__ import annotations

from typing import Any

import orjson

from .errors import ConfigError


def parse_kv(values: tuple[str, ...] | list[str] | None, flag: str) -> dict[str, str]:
    """``("A=1", "B=2")`` → ``{"A": "1", "B": "2"}``; a value without ``=`` is one clear error."""
    out: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}", f"e.g. {flag} name=value")
        out[key.strip()] = value.strip()
    return out


def parse_json_object(text: str | None, flag: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{flag} is not valid JSON: {exc}", f"e.g. {flag} '{{\"top_k\": 20}}'") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {type(value).__name__}",
                          f"e.g. {flag} '{{\"top_k\": 20}}'")
    return value
