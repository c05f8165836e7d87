"""Plugin manager: finds plugins through entry points, collects what they register.

- Every entry point of the group ``lmgauge`` is a plugin; the core's own metrics are
  registered the same way from inside (``lmgauge.eval.metrics``).
- ``LMGAUGE_PLUGINS=name1,name2`` loads only those plugins (entry-point or distribution
  names); the core's own plugin is always loaded.
- A plugin that fails to import, or whose hook raises, is recorded as broken (``lmgauge
  plugins`` shows it) and skipped: it never takes the CLI down.
- A name registered twice is an error naming both distributions; an unknown name is an error
  listing what is installed.
"""
from __future__ import annotations

import importlib.metadata as md
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

FAMILIES = {
    "benchmarks": "register_benchmarks",
    "backends": "register_backends",
    "datasets": "register_perf_datasets",
    "exporters": "register_exporters",
    "metrics": "register_metrics",
}
SINGULAR = {"benchmarks": "benchmark", "backends": "backend", "datasets": "perf dataset",
            "exporters": "exporter", "metrics": "metric"}
CORE_PLUGINS = ("lmgauge.eval.metrics",)


@dataclass
class PluginInfo:
    name: str                      # entry-point name
    distribution: str              # distribution that declares it ("lmgauge" for the core)
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)
    registers: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "module": self.module, "hooks": self.hooks, "registers": self.registers,
                "error": self.error}


@dataclass
class Registered:
    obj: Any
    plugin: PluginInfo


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"


class PluginManager:
    def __init__(self, only: list[str] | None = None, entry_points: list[Any] | None = None):
        self.pm = pluggy.PluginManager("lmgauge")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.registry: dict[str, dict[str, Registered]] = {fam: {} for fam in FAMILIES}
        self._info_by_plugin: dict[int, PluginInfo] = {}
        if only is None:
            env = os.environ.get("LMGAUGE_PLUGINS", "").strip()
            only = [x.strip() for x in env.split(",") if x.strip()] or None
        self._load_core()
        self._load_entry_points(only, entry_points)
        self._collect()

    # -- loading -----------------------------------------------------------------------
    def _load_core(self) -> None:
        import importlib

        from . import __version__

        for modname in CORE_PLUGINS:
            module = importlib.import_module(modname)
            info = PluginInfo(name=modname.rsplit(".", 1)[-1], distribution="lmgauge",
                              version=__version__, module=modname)
            self._add(module, info)

    def _load_entry_points(self, only: list[str] | None, eps: list[Any] | None) -> None:
        if eps is None:
            eps = list(md.entry_points(group="lmgauge"))
        seen: set[tuple[str, str]] = set()
        for ep in sorted(eps, key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if (ep.name, ep.value) in seen:  # same dist visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            if only is not None and ep.name not in only and dist_name not in only:
                continue
            info = PluginInfo(name=ep.name, distribution=dist_name, version=version,
                              module=ep.value)
            try:
                module = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a broken plugin must not kill the CLI
                if isinstance(exc, KeyboardInterrupt):
                    raise
                info.error = f"import failed: {_one_line(exc)}"
                self.plugins.append(info)
                continue
            try:
                self._add(module, info)
            except Exception as exc:  # noqa: BLE001
                info.error = f"invalid plugin: {_one_line(exc)}"
                self.plugins.append(info)

    def _add(self, module: Any, info: PluginInfo) -> None:
        self.pm.register(module, name=f"{info.distribution}:{info.name}")
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        self.plugins.append(info)
        self._info_by_plugin[id(module)] = info

    # -- collection --------------------------------------------------------------------
    def _collect(self) -> None:
        for family, hook_name in FAMILIES.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                info = self._info_by_plugin.get(id(impl.plugin))
                if info is None or info.error:
                    continue

                def register(obj: Any, _fam: str = family, _info: PluginInfo = info) -> None:
                    self._register(_fam, obj, _info)

                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    info.error = f"{hook_name} failed: {_one_line(exc)}"
                    for fam in FAMILIES:  # drop what it registered before failing
                        for key in [k for k, r in self.registry[fam].items() if r.plugin is info]:
                            del self.registry[fam][key]
                    info.registers = {}

    def _register(self, family: str, obj: Any, info: PluginInfo) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {info.name!r} ({info.distribution}) registered a "
                              f"{SINGULAR[family]} without a name",
                              "set a class attribute `name`")
        existing = self.registry[family].get(name)
        if existing is not None:
            a, b = existing.plugin, info
            raise PluginError(
                f"{SINGULAR[family]} name {name!r} is registered twice: by "
                f"{a.distribution} (plugin {a.name}) and by {b.distribution} (plugin {b.name})",
                "uninstall one of them or restrict loading with LMGAUGE_PLUGINS")
        self.registry[family][name] = Registered(obj, info)
        info.registers.setdefault(family, []).append(name)

    # -- lookup ------------------------------------------------------------------------
    def names(self, family: str) -> list[str]:
        return sorted(self.registry[family])

    def get(self, family: str, name: str) -> Any:
        found = self.registry[family].get(name)
        if found is None:
            installed = ", ".join(self.names(family)) or "none"
            broken = [p.name for p in self.plugins if p.error]
            hint = f"installed: {installed}"
            if broken:
                hint += f"; broken plugins (see `lmgauge plugins`): {', '.join(broken)}"
            raise PluginError(f"unknown {SINGULAR[family]} {name!r}", hint)
        return found.obj

    def call_commands(self, cli: Any) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self._info_by_plugin.get(id(impl.plugin))
            try:
                impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                if info is not None:
                    info.error = f"register_commands failed: {_one_line(exc)}"


_MANAGER: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER


def reset_manager() -> None:
    global _MANAGER
    _MANAGER = None
