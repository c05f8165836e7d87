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


def create_folder(path: str | os.PathLike, kind: str, saved: dict[str, Any], *, what: str | None = None,
                  **manifest: Any):
    """Make (or reopen) the run folder ``path`` for a ``kind`` run and own it: take its lock
    (one writer per folder; refused in one line naming the other writer), write ``run.json``
    (kind, schema version) unless it has one, and ``config.yaml`` (``saved``: the settings,
    secrets already removed). Returns the held :class:`lmgauge.runfolder.FolderLock`."""
    from .runfolder import FolderLock, RunConfig, new_manifest, read_manifest

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run folder {out}: {exc.strerror or exc}", "pass another --output") from None
    lock = FolderLock(out, what or kind).acquire()
    try:
        if read_manifest(out) is None:
            new_manifest(kind, **manifest).write(out)
        RunConfig(dict(saved)).write(out)
    except BaseException:
        lock.release()
        raise
    return lock


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
