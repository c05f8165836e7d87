"""Pieces shared by the ``eval`` and ``perf`` commands: flag parsing helpers and the backend
options that plugins declare."""
from __future__ import annotations

from typing import Any

import click
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


BACKEND_OPTION_MARK = "_lmgauge_backend_option"


def add_backend_options(command: click.Command, pm: Any) -> None:
    """Append every registered backend's own options to ``command`` (once, deduplicated)."""
    if getattr(command, "_lmgauge_backend_options_added", False):
        return
    command._lmgauge_backend_options_added = True  # type: ignore[attr-defined]
    taken = {opt for p in command.params for opt in getattr(p, "opts", [])} | {p.name for p in command.params}
    for name in pm.names("backends"):
        for option in getattr(pm.get("backends", name), "options", []) or []:
            if option.name in taken or any(o in taken for o in option.opts):
                continue
            setattr(option, BACKEND_OPTION_MARK, True)
            option.show_default = False
            option.help = f"[{name} backend] {option.help or ''}".strip()
            command.params.append(option)
            taken.update(option.opts)
            taken.add(option.name)


def pop_backend_options(command: click.Command, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the backend-declared options from ``kwargs`` and return the given ones."""
    out = {}
    for p in command.params:
        if getattr(p, BACKEND_OPTION_MARK, False) and p.name in kwargs:
            value = kwargs.pop(p.name)
            if value is not None and value != () and value != []:
                out[p.name] = list(value) if isinstance(value, tuple) else value
    return out
