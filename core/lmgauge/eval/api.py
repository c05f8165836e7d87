"""``lmgauge.evaluate(...)`` and the settings merge shared with the CLI.

Precedence: built-in defaults < ``--config FILE.yaml`` < explicit flags/keywords. With
``--resume DIR`` the base is DIR/config.yaml instead; the settings that define the run
(model, benchmarks, repeats, sampling, limit, collection, benchmark and metric options) must then
not change. Plugin options (options.py) travel in ``EvalConfig.options``; on every path they are
checked by their click type.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import EvalConfig, load_yaml, resolve_api_key, resolve_judge_api_key
from ..errors import ConfigError
from ..options import COMMAND_FAMILIES
from ..plugins import PluginManager, get_manager
from .report import Report

RUN_DEFINING = ("model", "backend", "benchmark", "repeats", "limit", "collection", "temperature",
                "top_p", "max_tokens", "seed", "extra_body", "system_prompt", "api", "dataset_path", "metric",
                "starts_thinking")
FAMILIES = COMMAND_FAMILIES["eval"]


def _empty(v: Any) -> bool:
    return v is None or v == () or v == [] or v == {}


def merge_settings(explicit: dict[str, Any], pm: PluginManager | None = None,
                   plugin_values: dict[str, Any] | None = None) -> EvalConfig:
    """The run's settings from explicit values (flags or keywords; ``plugin_values`` are the
    plugin options the user set), a ``config`` file or the resumed run's config.yaml."""
    pm = pm or get_manager()
    explicit = {k: v for k, v in explicit.items() if not _empty(v)}
    plugin_values = dict(plugin_values or {})
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    config_file = explicit.pop("config", None)
    resume = explicit.get("resume")
    if resume:
        saved_path = Path(resume) / "config.yaml"
        if not saved_path.is_file():
            raise ConfigError(f"--resume {resume}: no config.yaml in that folder",
                              "pass the folder of an earlier `lmgauge eval` run")
        saved, options = pm.options.split(load_yaml(str(saved_path), "saved run config"), FAMILIES, f"{saved_path}")
        saved.pop("lmgauge_version", None)
        settings.update(saved)
        settings["output"] = str(resume)
        for key in RUN_DEFINING:
            if key in explicit and key in settings and _norm(explicit[key]) != _norm(settings[key]):
                raise ConfigError(f"--resume {resume}: {key} differs from the saved run "
                                  f"({settings[key]!r} saved, {explicit[key]!r} given)",
                                  "drop the flag, or start a new run with --output")
        for key, value in plugin_values.items():
            families = {f for f, _ in pm.options.by_name[key].owners}
            if families & {"benchmarks", "metrics"} and key in options and _norm(options[key]) != _norm(value):
                raise ConfigError(f"--resume {resume}: {key} differs from the saved run "
                                  f"({options[key]!r} saved, {value!r} given)",
                                  "drop the flag, or start a new run with --output")
    elif config_file:
        settings, options = pm.options.split(load_yaml(config_file), FAMILIES, f"config file {config_file}")
    settings.update(explicit)
    options.update(plugin_values)
    settings["options"] = options
    settings["api_key"] = resolve_api_key(settings.get("api_key"))
    settings["judge_api_key"] = resolve_judge_api_key(settings.get("judge_api_key"))
    if not settings.get("backend"):
        settings["backend"] = default_plugin(pm, "backends", "--backend")
    return EvalConfig.from_dict(settings, source=config_file or "settings")


def default_plugin(pm: PluginManager, family: str, flag: str) -> str:
    """The installed plugin of ``family`` that declares itself the default."""
    name = pm.default(family)
    if name is None:
        raise ConfigError(f"no {flag} given and no installed plugin is the default",
                          f"pass {flag} NAME; installed: {', '.join(pm.names(family)) or 'none'}")
    return name


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def evaluate(pm: PluginManager | None = None, **kwargs: Any) -> Report:
    """Run an eval; keyword names are the CLI's flag names with underscores, plugin options
    included (e.g. ``evaluate(..., acme_flag=3)``), checked by their click types."""
    from .runner import run_eval

    pm = pm or get_manager()
    if "benchmark" in kwargs and isinstance(kwargs["benchmark"], str):
        kwargs["benchmark"] = [kwargs["benchmark"]]
    kwargs.setdefault("progress", False)
    core, plugin_values = pm.options.split(kwargs, FAMILIES, "lmgauge.evaluate()")
    config = merge_settings(core, pm, plugin_values)
    report, _out = run_eval(config, pm)
    return report
