"""The whole plugin contract of lmgauge.

A plugin is a module (or object) named by an entry point in the group ``lmgauge``::

    [options.entry_points]
    lmgauge =
        my_bench = my_package.my_module

The module defines any of the hooks below, decorated with ``lmgauge.hookimpl``. Each
``register_*`` hook receives a ``register`` callback; call it once per thing you provide.
Names must be unique across all installed plugins: registering a name that another plugin
already registered is an error naming both distributions. The base classes referred to live in
``lmgauge.interfaces``; the plain data types in ``lmgauge.types``.

Plugin modules are imported for every command (including ``lmgauge --help``), so they must be
cheap to import: import heavy libraries (torch, transformers, lmdeploy, swanlab) inside the
functions that need them.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("lmgauge")
hookimpl = pluggy.HookimplMarker("lmgauge")


@hookspec
def register_benchmarks(register):
    """Register eval benchmarks: ``register(benchmark)``.

    ``benchmark`` is an instance of :class:`lmgauge.interfaces.Benchmark` with a unique
    ``name``. The core calls ``benchmark.load(path)`` to get :class:`lmgauge.types.Sample`
    objects (``path`` is the user's ``--dataset-path NAME=PATH`` or ``None`` for the default
    source) and ``benchmark.score(sample, completion)`` to grade one answer. ``score`` runs
    in a worker process (so it may use SIGALRM), hence the benchmark must be picklable.
    """


@hookspec
def register_backends(register):
    """Register generation backends: ``register(BackendClass)``.

    ``BackendClass`` subclasses :class:`lmgauge.interfaces.Backend`, has a unique ``name``
    (what ``--backend NAME`` selects) and is instantiated with a
    :class:`lmgauge.interfaces.BackendConfig`. It serves both jobs: ``generate`` returns
    complete answers (eval), ``stream`` fills a :class:`lmgauge.types.PerfRecord` with the
    chunk timeline (perf). Extra command-line options the backend understands are declared in
    its ``options`` class attribute (a list of ``click.Option``); their values arrive in
    ``config.options``.
    """


@hookspec
def register_perf_datasets(register):
    """Register perf prompt sources: ``register(DatasetClass)``.

    ``DatasetClass`` subclasses :class:`lmgauge.interfaces.PerfDataset`, has a unique ``name``
    (what ``lmgauge perf --dataset NAME`` selects) and yields
    :class:`lmgauge.types.GenerationRequest` objects for the load generator.
    """


@hookspec
def register_exporters(register):
    """Register result exporters: ``register(ExporterClass)``.

    ``ExporterClass`` subclasses :class:`lmgauge.interfaces.Exporter`, has a unique ``name``
    (what ``--export NAME`` selects) and receives a finished run folder. An exporter that
    fails is reported in one line; the run's own files are never lost.
    """


@hookspec
def register_metrics(register):
    """Register eval metrics: ``register(metric)``.

    ``metric`` is an instance of :class:`lmgauge.interfaces.Metric` with a unique ``name``
    (what ``--metric NAME`` selects). The core computes, for every question, the metric's
    ``per_question`` value from that question's repeated scores, then averages over questions
    per subset, per benchmark and overall, with a 95% confidence interval.
    """


@hookspec
def register_perf_metrics(register):
    """Register perf metrics: ``register(metric)``.

    ``metric`` is an instance (or subclass) of :class:`lmgauge.interfaces.PerfMetric` with a
    unique ``name``: what ``--sla`` calls it (``ttft`` → ``ttft_p99``; ``rps``). Its
    declaration drives everything about it: the per-request value (``per_request``) or the
    level's (``level``), the summary.json key, the perf.sqlite column, the terminal tables, the
    report, ``--sla`` objectives and the exporters. lmgauge's own perf metrics are registered
    through this hook too (lmgauge.perf.builtin_metrics).
    """


@hookspec
def register_sandboxes(register):
    """Register code executors: ``register(SandboxClass)``.

    ``SandboxClass`` subclasses :class:`lmgauge.interfaces.Sandbox`, has a unique ``name``
    (what ``lmgauge eval --sandbox NAME`` selects; ``default = True`` makes it the one used
    without the flag) and is constructed with the values of its own ``options``. Benchmarks
    that run model-written code (``needs_sandbox = True``) get the run's sandbox as
    ``benchmark.sandbox`` and call ``sandbox.run(...)`` from ``score``, in grading worker
    processes: the object must pickle. A local executor (bubblewrap) and a remote one
    (Docker, SandboxFusion) implement the same ``run``.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``lmgauge`` click group: ``cli.add_command(command)``."""
