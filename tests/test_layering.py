"""Layering: what may import what.

1. The built-in plugins import nothing of lmgauge but ``lmgauge.plugin``, exactly as a
   third-party plugin must (docs/plugins.md): every ``.py`` file under each plugin folder is
   parsed with ``ast``, and every import counts wherever it is (module top, inside functions,
   ``importlib.import_module("lmgauge.x")`` / ``__import__`` with a literal name). Relative
   imports inside the plugin's own package are fine.
2. The core has no import circles (below, added with the core's split).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PUBLIC = "lmgauge.plugin"


def lmgauge_imports(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` of an lmgauge module other than
    :data:`PUBLIC` (``lmgauge`` itself included: ``from lmgauge import hookimpl`` reaches past
    the public module; ``from lmgauge import plugin`` does not)."""
    def core(name: str) -> bool:
        return name == "lmgauge" or name.startswith("lmgauge.")

    def public(name: str) -> bool:
        return name == PUBLIC or name.startswith(PUBLIC + ".")

    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if core(a.name) and not public(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and core(node.module):
            if node.module == "lmgauge":
                found += [(node.lineno, f"lmgauge.{a.name}") for a in node.names if f"lmgauge.{a.name}" != PUBLIC]
            elif not public(node.module):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            name = node.args[0].value
            if called in ("import_module", "__import__") and isinstance(name, str) and core(name) and not public(name):
                found.append((node.lineno, name))
    return sorted(found)


def plugin_files(folder: Path) -> list[Path]:
    skip = {"build", "dist", "__pycache__"}
    return sorted(p for p in folder.rglob("*.py")
                  if not any(part in skip or part.endswith(".egg-info") for part in p.relative_to(folder).parts))


# -- 1. the built-in plugins import only lmgauge.plugin ---------------------------------------
PLUGIN_FOLDERS = [
    pytest.param("backends", id="backends"),
    pytest.param("datasets", id="datasets"),
    pytest.param("benchmarks", id="benchmarks"),
    pytest.param("exporters", id="exporters"),
]


@pytest.mark.parametrize("folder", PLUGIN_FOLDERS)
def test_builtin_plugin_imports_only_lmgauge_plugin(folder):
    root = REPO / "plugins" / folder
    files = plugin_files(root)
    assert files, f"no .py files under {root}"
    bad = [f"{path.relative_to(REPO)}:{line}: imports {module}"
           for path in files for line, module in lmgauge_imports(path.read_text(encoding="utf-8"), str(path))]
    assert not bad, (f"plugins/{folder} imports lmgauge internals; import them from {PUBLIC} instead (add what is "
                     "missing to core/lmgauge/plugin.py and docs/plugins.md):\n" + "\n".join(bad))


def test_the_import_check_finds_every_kind_of_import():
    source = '''
import os
import lmgauge
import lmgauge.plugin
import lmgauge.plugin as public
import lmgauge.types as t
from lmgauge import hookimpl, plugin
from lmgauge.plugin import Backend
from lmgauge.errors import ConfigError
from lmgauge_backends.models import resolve_model
from . import sibling
from .endpoints import Endpoint
import importlib

def later():
    from lmgauge.tokenizers import from_hf
    importlib.import_module("lmgauge.grading")
    importlib.import_module("lmgauge.plugin")
    __import__("lmgauge.redaction")

class A:
    def m(self):
        import lmgauge.perf.requests
'''
    assert lmgauge_imports(source) == [
        (3, "lmgauge"), (6, "lmgauge.types"), (7, "lmgauge.hookimpl"), (9, "lmgauge.errors"),
        (16, "lmgauge.tokenizers"), (17, "lmgauge.grading"), (19, "lmgauge.redaction"), (23, "lmgauge.perf.requests")]


def test_plugin_files_skip_build_output(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("")
    for junk in ("build/lib/pkg", "pkg.egg-info", "pkg/__pycache__"):
        (tmp_path / junk).mkdir(parents=True, exist_ok=True)
        (tmp_path / junk / "copy.py").write_text("import lmgauge.errors\n")
    assert plugin_files(tmp_path) == [tmp_path / "pkg" / "mod.py"]


# -- 2. the core has no import circles --------------------------------------------------------
def core_modules() -> dict[str, tuple[Path, bool]]:
    """Module name → (file, is a package) for every module of core/lmgauge."""
    root = REPO / "core"
    out = {}
    for path in plugin_files(root / "lmgauge"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def import_graph(modules: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """Who imports whom among ``modules``: every import statement counts, at module level or
    inside a function (a lazy import is still a dependency), but those under ``if
    TYPE_CHECKING:`` (never executed). ``from PKG import NAME`` depends on PKG.NAME when that is
    a module, else on PKG itself (a name its ``__init__`` defines)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    pkg = ".".join(base + ([node.module] if node.module else []))
                else:
                    pkg = node.module or ""
                targets = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in modules else pkg for a in node.names]
            graph[mod] |= {t for t in targets if t in modules and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_core_has_no_import_circles():
    graph = import_graph(core_modules())
    assert len(graph) > 60
    found = cycles(graph)
    assert not found, "import circles in the core (each a set of modules importing each other):\n" + "\n".join(
        " <-> ".join(c) + "\n    " + "; ".join(f"{m} imports {sorted(graph[m] & set(c))}" for m in c) for c in found)


def test_the_circle_check_finds_a_lazy_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
