"""Plugin-declared options: one mechanism for every family.

A plugin class declares ``options = [click.Option(["--acme-flag", "acme_flag"], ...)]`` (see
interfaces.py). This module

- collects the declarations of every registered plugin into one :class:`OptionTable`, refusing
  two distributions that declare the same flag or parameter name (one clear error naming both;
  one distribution may share an identical declaration between its own plugins);
- attaches them to the commands that use the family (:data:`COMMAND_FAMILIES`), grouped per
  plugin in ``--help`` (:class:`PluginCommand`);
- checks values that come from a ``--config`` file or ``lmgauge.evaluate(**kwargs)`` with the
  option's own click type (:meth:`OptionTable.split`), exactly as the command line does;
- hands each plugin the values of the options it declared (:func:`values_for`): the user's
  value, else the option's default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import click
from click.core import ParameterSource

from .errors import ConfigError, PluginError

#: which families' options each command takes
COMMAND_FAMILIES: dict[str, tuple[str, ...]] = {
    "eval": ("backends", "benchmarks", "metrics", "exporters", "sandboxes"),
    "perf": ("backends", "datasets", "perf_metrics", "exporters"),
    "export": ("exporters",),
    "regrade": ("benchmarks", "exporters", "sandboxes"),
}
FAMILY_WORD = {"benchmarks": "benchmark", "backends": "backend", "datasets": "perf dataset",
               "exporters": "exporter", "metrics": "metric", "perf_metrics": "perf metric",
               "sandboxes": "sandbox"}
OWNERS_ATTR = "_lmgauge_owners"


def declared(obj: Any) -> list[click.Option]:
    """The options a plugin class (or an instance's class) declares."""
    cls = obj if isinstance(obj, type) else type(obj)
    return list(getattr(cls, "options", None) or [])


def check_declarations(obj: Any) -> str | None:
    """Why a plugin's ``options`` attribute is unusable, or None when it is fine."""
    cls = obj if isinstance(obj, type) else type(obj)
    opts = getattr(cls, "options", None)
    if opts is None:
        return None
    if not isinstance(opts, (list, tuple)):
        return f"{cls.__name__}.options must be a list of click.Option, not {type(opts).__name__}"
    for o in opts:
        if not isinstance(o, click.Option):
            return f"{cls.__name__}.options holds {o!r}, which is not a click.Option"
        if o.required:
            return (f"{cls.__name__} option {o.opts[0]} is required=True; every installed plugin's options are "
                    "on the command, so check for a missing value inside the plugin instead")
        if not o.name or not o.name.isidentifier():
            return f"{cls.__name__} option {o.opts[0]} needs a parameter name that is a Python identifier"
    return None


def _default(opt: click.Option) -> Any:
    """What the command line gives ``opt`` when the user does not set it (click's own
    processing of an empty command line, so defaults are typed as on the command line)."""
    ctx = click.Command("lmgauge", params=[opt]).make_context("lmgauge", [])
    return ctx.params.get(opt.name)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def values_for(obj: Any, supplied: dict[str, Any]) -> dict[str, Any]:
    """The value of every option ``obj`` declares: ``supplied[name]`` if there, else the
    option's default (tuples become lists)."""
    out: dict[str, Any] = {}
    for opt in declared(obj):
        out[opt.name] = _plain(supplied[opt.name] if opt.name in supplied else _default(opt))
    return out


@dataclass
class Declared:
    option: click.Option
    distribution: str
    owners: list[tuple[str, str]] = field(default_factory=list)  # (family, plugin name)

    def title(self) -> str:
        names = ", ".join(f"{n} {FAMILY_WORD[f]}" for f, n in self.owners)
        return f"Options of the {names} ({self.distribution})"


class OptionTable:
    """Every plugin option of the loaded plugins, checked for collisions."""

    def __init__(self, registry: dict[str, dict[str, Any]]):
        self.by_name: dict[str, Declared] = {}
        by_flag: dict[str, Declared] = {}
        for family in ("backends", "benchmarks", "datasets", "metrics", "perf_metrics", "exporters", "sandboxes"):
            for name, reg in sorted(registry.get(family, {}).items()):
                dist = reg.plugin.distribution
                for opt in declared(reg.obj):
                    flags = [*opt.opts, *opt.secondary_opts]
                    known = self.by_name.get(opt.name) or next((by_flag[f] for f in flags if f in by_flag), None)
                    if known is not None:
                        same = (known.distribution == dist and known.option.name == opt.name
                                and set(known.option.opts) == set(opt.opts)
                                and set(known.option.secondary_opts) == set(opt.secondary_opts))
                        if not same:
                            raise PluginError(
                                f"option {flags[0]} ({opt.name}) is declared twice: by the "
                                f"{known.owners[0][1]} {FAMILY_WORD[known.owners[0][0]]} of {known.distribution} and by "
                                f"the {name} {FAMILY_WORD[family]} of {dist}",
                                "uninstall one of them or restrict loading with LMGAUGE_PLUGINS")
                        known.owners.append((family, name))
                        continue
                    d = Declared(opt, dist, [(family, name)])
                    setattr(opt, OWNERS_ATTR, d)
                    self.by_name[opt.name] = d
                    for f in flags:
                        by_flag[f] = d

    def for_families(self, families: Iterable[str]) -> list[Declared]:
        fams = set(families)
        return [d for d in self.by_name.values() if any(f in fams for f, _ in d.owners)]

    def split(self, values: dict[str, Any], families: Iterable[str], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(core settings, plugin option values)`` of a flat mapping from a config file or
        keyword arguments; every plugin value is checked (and converted) by its click type."""
        fams = tuple(families)
        mine = {d.option.name: d for d in self.for_families(fams)}
        core: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for key, value in values.items():
            d = mine.get(key)
            if d is None:
                core[key] = value
            else:
                options[key] = cast(d.option, value, where)
        return core, options


def cast(opt: click.Parameter, value: Any, where: str) -> Any:
    """``value`` checked and converted by ``opt``'s click type (as the command line would)."""
    if opt.multiple and not isinstance(value, (list, tuple)):
        value = [value]
    ctx = click.Context(click.Command("lmgauge"))
    try:
        return _plain(opt.process_value(ctx, value))
    except click.BadParameter as exc:
        flag = opt.opts[0] if getattr(opt, "opts", None) else opt.name
        raise ConfigError(f"{where}: {opt.name}: {exc.message}", f"the value of {flag}; see --help") from None


class PluginCommand(click.Command):
    """A command that takes the options of the plugin families in ``plugin_families``, shown
    per plugin in ``--help``. The ``lmgauge`` group attaches them on first use
    (:meth:`attach`), so that ``lmgauge --help`` loads no plugin."""

    def __init__(self, *args: Any, plugin_families: tuple[str, ...] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plugin_families = plugin_families if plugin_families is not None else COMMAND_FAMILIES.get(self.name or "", ())
        self._attached = False

    def attach(self, pm: Any) -> None:
        if self._attached:
            return
        self._attached = True
        own = {f for p in self.params for f in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
        own_names = {p.name for p in self.params}
        for d in pm.options.for_families(self.plugin_families):
            opt = d.option
            clash = [f for f in [*opt.opts, *opt.secondary_opts] if f in own] or ([opt.name] if opt.name in own_names else [])
            if clash:
                f, n = d.owners[0]
                raise PluginError(f"option {clash[0]} of the {n} {FAMILY_WORD[f]} ({d.distribution}) clashes with "
                                  f"lmgauge {self.name}'s own {clash[0]}",
                                  "rename the plugin's option (prefix it with the plugin's name)")
            self.params.append(opt)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        core: list[tuple[str, str]] = []
        groups: dict[str, list[tuple[str, str]]] = {}
        for p in self.get_params(ctx):
            rv = p.get_help_record(ctx) if isinstance(p, click.Option) else None
            if rv is None:
                continue
            d = getattr(p, OWNERS_ATTR, None)
            (groups.setdefault(d.title(), []) if d is not None else core).append(rv)
        if core:
            with formatter.section("Options"):
                formatter.write_dl(core)
        for title, rows in groups.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def pop_plugin_values(ctx: click.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove every plugin option from a command's ``kwargs``; return those the user set
    (on the command line or through the environment), by parameter name."""
    out: dict[str, Any] = {}
    for p in ctx.command.params:
        if getattr(p, OWNERS_ATTR, None) is None or p.name not in kwargs:
            continue
        value = kwargs.pop(p.name)
        source = ctx.get_parameter_source(p.name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT):
            out[p.name] = _plain(value)
    return out
