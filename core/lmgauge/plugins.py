"""Plugin manager: finds plugins through entry points, collects what they register.

- Every entry point of the group ``lmgauge`` is a plugin; the core's own metrics are
  registered the same way from inside (``lmgauge.eval.metrics``).
- ``LMGAUGE_PLUGINS=name1,name2`` loads only those plugins (entry-point or distribution
  names); the core's own plugin is always loaded.
- One-off plugins without packaging: plain ``.py`` files named by ``--plugin FILE``
  (repeatable; the CLI puts them in ``LMGAUGE_PLUGIN_FILES``) or found in the folder
  ``LMGAUGE_PLUGINS_DIR``. They are checked exactly as packaged plugins are; their
  "distribution" is shown as ``file NAME.py``. Worker processes load the same files.
- What a hook registers is checked at once: the right kind of object (a subclass of the
  family's base class, or an instance of one where instances are allowed), no abstract method
  left, well-formed ``options``. A plugin that fails any check is broken: listed by ``lmgauge
  plugins``, reported in one warning line, and skipped.
- Plugin options (see options.py) are collected into ``PluginManager.options``; two
  distributions declaring the same flag is an error naming both.
- A plugin that fails to import, or whose hook raises, is recorded as broken (``lmgauge
  plugins`` shows it) and skipped: it never takes the CLI down.
- A name registered twice is an error naming both distributions; an unknown name is an error
  listing what is installed.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .interfaces import BASES, CLASS_ONLY
from .options import OptionTable, check_declarations

FAMILIES = {
    "benchmarks": "register_benchmarks",
    "backends": "register_backends",
    "datasets": "register_perf_datasets",
    "exporters": "register_exporters",
    "metrics": "register_metrics",
    "perf_metrics": "register_perf_metrics",
    "sandboxes": "register_sandboxes",
}
SINGULAR = {"benchmarks": "benchmark", "backends": "backend", "datasets": "perf dataset",
            "exporters": "exporter", "metrics": "metric", "perf_metrics": "perf metric", "sandboxes": "sandbox"}
CORE_PLUGINS = ("lmgauge.eval.metrics", "lmgauge.perf.builtin_metrics")
PLUGIN_FILES_ENV = "LMGAUGE_PLUGIN_FILES"
PLUGINS_DIR_ENV = "LMGAUGE_PLUGINS_DIR"


def plugin_files() -> list[str]:
    """The one-off plugin files to load: ``LMGAUGE_PLUGIN_FILES`` (os.pathsep-separated, set by
    ``--plugin``) and every ``*.py`` in ``LMGAUGE_PLUGINS_DIR``."""
    files = [f for f in os.environ.get(PLUGIN_FILES_ENV, "").split(os.pathsep) if f.strip()]
    folder = os.environ.get(PLUGINS_DIR_ENV, "").strip()
    if folder:
        if not os.path.isdir(folder):
            raise PluginError(f"{PLUGINS_DIR_ENV}={folder} is not a folder", "point it at a folder of plugin .py files")
        files += sorted(os.path.join(folder, f) for f in os.listdir(folder)
                        if f.endswith(".py") and not f.startswith(("_", ".")))
    return list(dict.fromkeys(os.path.abspath(f) for f in files))


def file_module_name(path: str) -> str:
    """The module name a plugin file is imported under: the same in every process, so objects
    from it unpickle in worker processes."""
    import hashlib  # only for plugin files: `lmgauge --help` does not pay for it

    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"lmgauge_file_plugin_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"


def import_plugin_file(path: str) -> Any:
    """Import one plugin file (once per process)."""
    name = file_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_plugin_files() -> None:
    """Import every one-off plugin file (for worker processes, before they unpickle plugin
    objects); failures are left to the plugin manager to report."""
    try:
        paths = plugin_files()
    except PluginError:
        return
    for path in paths:
        try:
            import_plugin_file(path)
        except BaseException:  # noqa: BLE001 - reported by the parent's plugin manager
            pass


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
        self._load_files()
        self._collect()
        self.options = OptionTable(self.registry)
        self.warned = False

    # -- loading -----------------------------------------------------------------------
    def _load_core(self) -> None:
        import importlib

        from .version import __version__

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
            self._load(PluginInfo(name=ep.name, distribution=dist_name, version=version, module=ep.value), ep.load)

    def _load_files(self) -> None:
        for path in plugin_files():
            info = PluginInfo(name=os.path.splitext(os.path.basename(path))[0],
                              distribution=f"file {os.path.basename(path)}", version="local", module=path)
            self._load(info, lambda path=path: import_plugin_file(path))

    def _load(self, info: PluginInfo, load: Any) -> None:
        """Import one plugin (``load()`` returns its module) and register its hooks; a failure
        marks it broken and never reaches the caller."""
        try:
            module = load()
        except BaseException as exc:  # noqa: BLE001 - a broken plugin must not kill the CLI
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.error = f"import failed: {_one_line(exc)}"
            self.plugins.append(info)
            return
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
                except PluginError as exc:
                    if not isinstance(exc, _Misregistered):
                        raise
                    info.error = exc.message
                    self._drop(info)
                except Exception as exc:  # noqa: BLE001
                    info.error = f"{hook_name} failed: {_one_line(exc)}"
                    self._drop(info)

    def _drop(self, info: PluginInfo) -> None:
        """Forget everything a broken plugin registered."""
        for fam in FAMILIES:
            for key in [k for k, r in self.registry[fam].items() if r.plugin is info]:
                del self.registry[fam][key]
        info.registers = {}

    def _check_kind(self, family: str, obj: Any, info: PluginInfo) -> None:
        base = BASES[family]
        what = f"{SINGULAR[family]} {getattr(obj, 'name', None) or obj!r}"
        where = f"plugin {info.name!r} ({info.distribution})"
        if isinstance(obj, type):
            if not issubclass(obj, base):
                raise _Misregistered(f"{where} registered {obj.__name__} as a {SINGULAR[family]}, but it does not "
                                     f"subclass lmgauge.plugin.{base.__name__}")
            missing = sorted(getattr(obj, "__abstractmethods__", ()) or ())
            if missing:
                raise _Misregistered(f"{where}: {obj.__name__} does not implement {', '.join(missing)} "
                                     f"(abstract in {base.__name__})")
        elif isinstance(obj, base):
            if family in CLASS_ONLY:
                raise _Misregistered(f"{where} registered an instance of {type(obj).__name__}; register the class "
                                     f"(lmgauge constructs each {SINGULAR[family]} with the run's settings)")
        else:
            raise _Misregistered(f"{where} registered {what!s} ({type(obj).__name__}) as a {SINGULAR[family]}, but it "
                                 f"is not a lmgauge.plugin.{base.__name__}")
        problem = check_declarations(obj)
        if problem:
            raise _Misregistered(f"{where}: {problem}")

    def _register(self, family: str, obj: Any, info: PluginInfo) -> None:
        self._check_kind(family, obj, info)
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
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]

    def warn_broken(self, echo: Any) -> None:
        """One warning line per broken plugin (once per process)."""
        if self.warned:
            return
        self.warned = True
        for p in self.broken():
            echo(f"lmgauge: warning: plugin {p.name} ({p.distribution}) is broken and was skipped: {p.error}")

    def default(self, family: str) -> str | None:
        """The name of the one registered plugin of ``family`` that declares ``default = True``
        (None when there is none, or more than one)."""
        names = [n for n, r in self.registry[family].items() if getattr(r.obj, "default", False) is True]
        return names[0] if len(names) == 1 else None

    def distribution_of(self, family: str, name: str) -> str:
        return self.registry[family][name].plugin.distribution

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


class _Misregistered(PluginError):
    """A hook registered the wrong kind of object: the plugin is marked broken."""


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
