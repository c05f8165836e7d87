"""``lmgauge.evaluate(...)`` and the settings merge shared with the CLI.

Precedence: built-in defaults < ``--config FILE.yaml`` < explicit flags/keywords. With
``--resume DIR`` the base is DIR/config.yaml instead; the settings that define the run
(model, benchmarks, repeats, sampling, limit, collection) must then not change.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import EvalConfig, load_yaml, resolve_api_key
from ..errors import ConfigError
from ..plugins import PluginManager, get_manager
from .report import Report

RUN_DEFINING = ("model", "backend", "benchmark", "repeats", "limit", "collection", "temperature",
                "top_p", "max_tokens", "seed", "extra_body", "system_prompt", "api", "dataset_path", "metric")


def merge_settings(explicit: dict[str, Any]) -> EvalConfig:
    explicit = {k: v for k, v in explicit.items() if v is not None and v != () and v != [] and v != {}}
    settings: dict[str, Any] = {}
    config_file = explicit.pop("config", None)
    resume = explicit.get("resume")
    if resume:
        saved_path = Path(resume) / "config.yaml"
        if not saved_path.is_file():
            raise ConfigError(f"--resume {resume}: no config.yaml in that folder",
                              "pass the folder of an earlier `lmgauge eval` run")
        settings.update(load_yaml(str(saved_path), "saved run config"))
        settings.pop("lmgauge_version", None)
        settings["output"] = str(resume)
        for key in RUN_DEFINING:
            if key in explicit and key in settings and _norm(explicit[key]) != _norm(settings[key]):
                raise ConfigError(f"--resume {resume}: {key} differs from the saved run "
                                  f"({settings[key]!r} saved, {explicit[key]!r} given)",
                                  "drop the flag, or start a new run with --output")
    elif config_file:
        settings.update(load_yaml(config_file))
    settings.update(explicit)
    settings["api_key"] = resolve_api_key(settings.get("api_key"))
    return EvalConfig.from_dict(settings, source=config_file or "settings")


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def evaluate(pm: PluginManager | None = None, **kwargs: Any) -> Report:
    """Run an eval; keyword names are the CLI's flag names with underscores."""
    from .runner import run_eval

    if "benchmark" in kwargs and isinstance(kwargs["benchmark"], str):
        kwargs["benchmark"] = [kwargs["benchmark"]]
    kwargs.setdefault("progress", False)
    config = merge_settings(kwargs)
    report, _out = run_eval(config, pm or get_manager())
    return report
