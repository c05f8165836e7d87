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
    pytest.param("exporters", id="exporters",
                 marks=pytest.mark.xfail(strict=False, reason="lead converts exporters")),
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
# (the lead adds the core's import-circle check here: lmgauge.* modules of core/lmgauge, the
# graph of their imports, no cycle)
