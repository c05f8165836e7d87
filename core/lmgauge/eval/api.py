"""``lmgauge.evaluate(...)`` and the settings merge shared with the CLI.

Precedence: built-in defaults < ``--config FILE.yaml`` < explicit flags/keywords. With
``--resume DIR`` the base is DIR/config.yaml instead; the settings that define the run
(model, benchmarks, repeats, sampling, limit, collection, sweep, benchmark and metric options)
must then not change. ``--resume`` of a sweep folder continues every variant of the sweep
(:func:`lmgauge.eval.runner.run_sweep`); ``lmgauge.evaluate(sweep=[...])`` runs one and returns
its ``sweep.json``. Plugin options (options.py) travel in ``EvalConfig.options``; on every path they are
checked by their click type.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import EvalConfig, load_yaml
from ..errors import ConfigError
from ..options import COMMAND_FAMILIES
from ..plugins import PluginManager, get_manager
from ..runfolder import RunConfig
from ..runsetup import is_empty as _empty
from ..runsetup import merge_settings as run_settings
from .report import Report

from ..config import RUN_DEFINING  # noqa: E402  (the settings --resume may not change)
FAMILIES = COMMAND_FAMILIES["eval"]


def merge_settings(explicit: dict[str, Any], pm: PluginManager | None = None,
                   plugin_values: dict[str, Any] | None = None) -> EvalConfig:
    """The run's settings from explicit values (flags or keywords; ``plugin_values`` are the
    plugin options the user set), a ``config`` file or the resumed run's config.yaml."""
    pm = pm or get_manager()
    explicit = {k: v for k, v in explicit.items() if not _empty(v)}
    plugin_values = dict(plugin_values or {})
    resume = explicit.get("resume")
    base = None
    if resume:
        from ..runfolder import kind_of

        kind, _ = kind_of(Path(resume)) if Path(resume).is_dir() else (None, None)
        if kind == "perf":
            raise ConfigError(f"--resume {resume}: it is a perf run folder, and only eval runs are resumed",
                              "run lmgauge perf again with a new --output")
        given_output = explicit.get("output")
        if given_output and Path(given_output).resolve() != Path(resume).resolve():
            raise ConfigError(f"--resume {resume} continues that folder, but --output names another ({given_output})",
                              "drop --output (a resumed run writes into its own folder)")
        saved_path = Path(resume) / "config.yaml"
        if not saved_path.is_file():  # a sweep folder holds its command's settings too: resumed alike
            raise ConfigError(f"--resume {resume}: no config.yaml in that folder",
                              "pass the folder of an earlier `lmgauge eval` run (or sweep)")
        load_yaml(str(saved_path), "saved run config")  # unreadable YAML: one line naming it
        settings, options = RunConfig.read(resume).split(pm, FAMILIES, str(saved_path))
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
        explicit.pop("config", None)
        base = (settings, options)
    return run_settings(EvalConfig, explicit, pm, plugin_values, base=base)


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def evaluate(pm: PluginManager | None = None, **kwargs: Any) -> Report:
    """Run an eval; keyword names are the CLI's flag names with underscores, plugin options
    included (e.g. ``evaluate(..., acme_flag=3)``), checked by their click types. With
    ``sweep=["KEY=V1,V2"]`` it runs the sweep and returns its ``sweep.json`` document (a dict)."""
    from .runner import run_eval

    pm = pm or get_manager()
    if "benchmark" in kwargs and isinstance(kwargs["benchmark"], str):
        kwargs["benchmark"] = [kwargs["benchmark"]]
    kwargs.setdefault("progress", False)
    core, plugin_values = pm.options.split(kwargs, FAMILIES, "lmgauge.evaluate()")
    config = merge_settings(core, pm, plugin_values)
    if config.sweep:
        from .runner import run_sweep

        return run_sweep(config, pm).doc
    report, out = run_eval(config, pm)
    from ..errors import TooLittleMeasured
    from ..runsetup import check_eval_yield

    try:
        check_eval_yield(report, out)
    except TooLittleMeasured as exc:
        exc.report = report  # what was measured, for a caller that wants it anyway
        raise
    return report
