"""The run skeleton eval and perf share: the settings merge (defaults < ``--config FILE`` <
flags), the backend's construction, the run folder's creation and the finish (report.html and
exporters). ``lmgauge eval``, ``lmgauge.evaluate``, ``lmgauge perf``, the judge and
``lmgauge regrade`` all go through here, so each of these is done one way."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, LmgaugeError


def is_empty(v: Any) -> bool:
    return v is None or v == () or v == [] or v == {}


def default_plugin(pm: Any, family: str, flag: str) -> str:
    """The installed plugin of ``family`` that declares itself the default."""
    name = pm.default(family)
    if name is None:
        raise ConfigError(f"no {flag} given and no installed plugin is the default",
                          f"pass {flag} NAME; installed: {', '.join(pm.names(family)) or 'none'}")
    return name


def merge_settings(cls: Any, explicit: dict[str, Any], pm: Any, plugin_values: dict[str, Any] | None = None, *,
                   base: tuple[dict[str, Any], dict[str, Any]] | None = None) -> Any:
    """``cls`` (EvalConfig or PerfConfig) from its defaults, then ``base`` (core settings and
    plugin option values: a resumed run's config.yaml) or the ``config`` file in ``explicit``,
    then ``explicit`` itself (flags or keywords) and ``plugin_values``. Plugin option values
    from files are checked by their click types; the API key is looked up; the default backend
    is the installed one that declares itself so."""
    from .config import load_yaml, resolve_api_key, resolve_judge_api_key
    from .options import COMMAND_FAMILIES

    explicit = {k: v for k, v in explicit.items() if not is_empty(v)}
    config_file = explicit.pop("config", None)
    if base is not None:
        settings, options = dict(base[0]), dict(base[1])
    elif config_file:
        settings, options = pm.options.split(load_yaml(config_file), COMMAND_FAMILIES[cls.COMMAND],
                                             f"config file {config_file}")
    else:
        settings, options = {}, {}
    settings.update(explicit)
    options.update(plugin_values or {})
    settings["options"] = options
    settings["api_key"] = resolve_api_key(settings.get("api_key"))
    if "judge_api_key" in cls.keys():
        settings["judge_api_key"] = resolve_judge_api_key(settings.get("judge_api_key"))
    if not settings.get("backend"):
        settings["backend"] = default_plugin(pm, "backends", "--backend")
    if "dataset" in cls.keys() and not settings.get("dataset") and settings.get("prompt") is None:
        settings["dataset"] = default_plugin(pm, "datasets", "--dataset")
    return cls.from_dict(settings, source=config_file or "settings")


def make_backend(pm: Any, name: str, *, model: str, urls: list[str], api_key: str | None, api: str | None,
                 connect_timeout: float = 30.0, read_timeout: float = 600.0, options: dict[str, Any] | None = None,
                 replicas: int = 1, gpus_per_replica: float | None = None, ray_address: str | None = None):
    """The backend plugin ``name`` constructed with the run's settings and the values of its own
    options (from ``options``, every plugin's values by parameter name); ``replicas > 1`` runs
    an in-process backend as Ray actors (lmgauge.scale)."""
    from .interfaces import BackendConfig
    from .options import values_for

    cls = pm.get("backends", name)
    config = BackendConfig(model=model, base_url=urls[0] if urls else None, endpoints=list(urls), api_key=api_key,
                           api=api, connect_timeout=connect_timeout, read_timeout=read_timeout,
                           options=values_for(cls, options or {}))
    if replicas > 1:
        from .scale import replica_backend

        return replica_backend(name, config, replicas, gpus_per_replica, ray_address)
    return cls(config)


#: files that make a folder a run folder (a new run never writes into one: it would mix two runs)
RUN_MARKERS = ("run.json", "samples.jsonl", "report.json", "summary.json", "perf.sqlite", "sweep.json")


def refuse_reuse(out: Path, kind: str) -> None:
    """A new run (not ``--resume``) into a folder that already holds one is refused in one
    line: reusing it would mix two runs' data (or silently resume with other settings)."""
    if not out.is_dir() or not any((out / m).exists() for m in RUN_MARKERS):
        return
    from .runfolder import RunConfig, kind_of

    found, _ = kind_of(out)
    found = found or ("eval" if (out / "samples.jsonl").exists() else "perf" if (out / "perf.sqlite").exists() else "")
    model = RunConfig.read(out).model
    of = f"{found} run" + (f" of {model}" if model else "")
    if found == "eval" and kind == "eval":
        hint = f"continue it with `lmgauge eval --resume {out}`, or pass a new --output"
    elif found == "sweep":
        hint = f"continue it with the same `lmgauge eval ... --sweep` and --output {out}, or pass a new --output"
    else:
        hint = "pass a new --output"
    raise ConfigError(f"--output {out} already holds a {of}", hint)


def create_folder(path: str | os.PathLike, kind: str, saved: dict[str, Any], *, what: str | None = None,
                  resume: bool = False, **manifest: Any):
    """Make (or reopen, ``resume``) the run folder ``path`` for a ``kind`` run and own it: a
    new run into a folder that holds one is refused (:func:`refuse_reuse`); take its lock (one
    writer per folder; refused in one line naming the other writer); write ``run.json`` (kind,
    schema version) unless it has one, and ``config.yaml`` (``saved``: the settings, secrets
    already removed). Returns the held :class:`lmgauge.runfolder.FolderLock`."""
    from .runfolder import FolderLock, RunConfig, new_manifest, read_manifest

    out = Path(path)
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run folder {out}: {exc.strerror or exc}", "pass another --output") from None
    lock = FolderLock(out, what or kind).acquire()  # a live writer: refused naming it (pid, host)
    try:
        if not resume:
            refuse_reuse(out, kind)
        if read_manifest(out) is None:
            new_manifest(kind, **manifest).write(out)
        RunConfig(dict(saved)).write(out)
    except BaseException:
        lock.release()
        if made:
            try:
                out.rmdir()  # nothing of ours is left in a folder we made
            except OSError:
                pass
        raise
    return lock


def check_exporters(names: list[str] | None, pm: Any) -> None:
    """Every ``--export`` name is an installed exporter: one line before the run, not after."""
    from .export import parse_names

    for name in parse_names(names):
        pm.get("exporters", name)


def finish_run(run_dir: str, settings: dict[str, Any], explicit: dict[str, Any] | None = None, echo: Any = None) -> None:
    """Write DIR/report.html and run the exporters; failures are one line each, the run's
    own files stay."""
    import click

    echo = echo or click.echo
    from .htmlreport import write_html_report

    try:
        path = write_html_report([run_dir], os.path.join(run_dir, "report.html"))
        echo(f"html report: {path}")
    except LmgaugeError as exc:
        echo(f"lmgauge: warning: HTML report not written: {exc.line()}", err=True)
    from .export import export_settings, run_exporters
    from .plugins import get_manager

    names, options = export_settings(settings, explicit, get_manager())
    for line in run_exporters(names, run_dir, options):
        echo(line, err=line.startswith("lmgauge: warning"))


def check_eval_yield(report: Any, out: Any) -> None:
    """Exit code 4 (:class:`lmgauge.errors.TooLittleMeasured`) when fewer than half of the
    run's samples have a verdict: every request failed, or the graders could not run. The line
    quotes the most common error."""
    from .errors import MIN_SUCCESS, TooLittleMeasured

    total = sum(b.samples for b in report.benchmarks)
    graded = sum(b.graded for b in report.benchmarks)
    if total and graded >= MIN_SUCCESS * total:
        return
    errors = sum(b.errors for b in report.benchmarks)
    graders = sum(b.grader_errors for b in report.benchmarks)
    counts: dict[str, int] = {}
    for b in report.benchmarks:
        for text, n in (b.error_examples or {}).items():
            counts[text] = counts.get(text, 0) + n
    common = max(counts.items(), key=lambda kv: kv[1]) if counts else None
    why = f"; most common ({common[1]}×): {common[0]}" if common else ""
    raise TooLittleMeasured(
        f"only {graded} of {total} samples have a verdict ({errors} requests failed, {graders} could not be "
        f"graded{why})", f"what was measured is in {out}; fix the cause, then `lmgauge eval --resume {out}` "
        f"runs the rest" if errors else f"what was measured is in {out}; `lmgauge regrade {out}` grades it again")


def check_perf_yield(summary: Any, out: Any) -> None:
    """Exit code 4 when fewer than half of the run's requests succeeded (none at all
    included); the line quotes the most common failure."""
    from .errors import MIN_SUCCESS, TooLittleMeasured

    total = sum(lv.requests for lv in summary.runs)
    ok = sum(lv.succeeded for lv in summary.runs)
    if total and ok >= MIN_SUCCESS * total:
        return
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for lv in summary.runs:
        for group, n in lv.failures.items():
            counts[group] = counts.get(group, 0) + n
            examples.setdefault(group, lv.failure_examples.get(group) or group)
    common = max(counts.items(), key=lambda kv: kv[1]) if counts else None
    why = f"; most common ({common[1]}×): {examples[common[0]]}" if common else ""
    raise TooLittleMeasured(f"only {ok} of {total} requests succeeded{why}",
                            f"what was measured is in {out}; fix the cause and run again")
