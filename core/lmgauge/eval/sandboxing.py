"""Where model-written code runs: the run's sandbox, handed to the benchmarks that need one.

A benchmark that executes model code declares ``needs_sandbox = True``; ``make_benchmark``
(eval, ``--resume`` and ``regrade`` all build their benchmarks there) calls
:func:`attach_sandbox`, which constructs the sandbox plugin the run selected (``--sandbox NAME``,
else the installed default, ``local``) with the values of its own options, checks it before
anything runs, and sets it as ``benchmark.sandbox``. The sandbox is pickled into the grading
worker processes with the benchmark.

The selection (``EvalConfig.sandbox`` and ``sandbox_require_isolation``) travels with the
plugin option values (``config.options``, see :func:`carry_selection`), the one mapping every
path that builds benchmarks hands over.

Isolation: a sandbox whose ``isolation()`` names something missing (e.g. ``local`` without
bubblewrap) is refused with ``--sandbox-require-isolation``, else reported once per process in
one warning line.
"""
from __future__ import annotations

import sys
from typing import Any

from ..errors import ConfigError
from ..options import values_for

SANDBOX_KEY = "sandbox"
REQUIRE_KEY = "sandbox_require_isolation"
_warned: set[str] = set()
_checked: dict[tuple[str, str], Any] = {}


def carry_selection(config: Any) -> None:
    """Copy the run's sandbox choice into ``config.options`` (see the module docstring)."""
    config.options[SANDBOX_KEY] = config.sandbox
    config.options[REQUIRE_KEY] = bool(config.sandbox_require_isolation)


def make_sandbox(pm: Any, options: dict[str, Any]) -> Any:
    """The run's sandbox: the plugin named in ``options`` (else the default one), constructed
    with its option values, checked (``check()``), its isolation checked against
    ``--sandbox-require-isolation``."""
    name = options.get(SANDBOX_KEY) or pm.default("sandboxes")
    if not name:
        installed = ", ".join(pm.names("sandboxes")) or "none"
        raise ConfigError("this run has benchmarks that execute model-written code, and no sandbox is installed "
                          f"that is the default (installed: {installed})",
                          "pip install lmgauge-sandboxes (the local bubblewrap sandbox), or pass --sandbox NAME")
    cls = pm.get("sandboxes", name)
    values = values_for(cls, options)
    key = (name, repr(sorted(values.items())))
    sandbox = _checked.get(key)
    if sandbox is None:
        sandbox = cls(values)
        sandbox.check()
        _checked[key] = sandbox
    weaker = sandbox.isolation()
    if weaker:
        if options.get(REQUIRE_KEY):
            raise ConfigError(f"sandbox {name}: {weaker}, and --sandbox-require-isolation is set",
                              "install bubblewrap (apt-get install bubblewrap) or choose an isolated --sandbox")
        if name not in _warned:
            _warned.add(name)
            print(f"lmgauge: warning: sandbox {name}: {weaker}; model-written code runs with weaker isolation "
                  "(--sandbox-require-isolation makes this an error)", file=sys.stderr)
    return sandbox


def attach_sandbox(pm: Any, bench: Any, options: dict[str, Any]) -> None:
    """Give ``bench`` the run's sandbox when it declares ``needs_sandbox``. Only a run's settings
    carry the selection (:func:`carry_selection`): a benchmark built to show samples (the app,
    reports) gets none, and never waits for, or fails on, a sandbox it does not use."""
    if getattr(bench, "needs_sandbox", False) and SANDBOX_KEY in options:
        bench.sandbox = make_sandbox(pm, options)
