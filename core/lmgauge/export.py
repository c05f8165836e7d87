"""Running exporters on a finished run folder.

``run_exporters(names, run_dir, options)`` looks every name up through the plugin manager
(``register_exporters``), runs it, and returns one line per exporter for the user: where the
export went, or why it failed. A failing exporter never raises and never changes the run's
own files (config.yaml, samples.jsonl, report.json, summary.json, perf.sqlite, report.html):
exporters only read the run folder and write new files.

``options``: ``export_path`` (a file or folder, see :func:`export_target`) and the values of
plugin options (options.py); each exporter receives ``export_path`` plus the values of the
options it declares itself.

For the ``eval``/``perf`` commands: :func:`export_click_options` adds ``--export`` and
``--export-path`` to a click command and :func:`export_settings` turns the values into
``(names, options)``; setting an option of an exporter that ``--export`` does not name adds that
exporter (e.g. EvalScope's ``--swanlab-api-key``).
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import ConfigError, LmgaugeError
from .redaction import redact, redact_text
from .runfolder import RunFolder, load_run

#: files a run writes itself: exporters must never write to them
RUN_FILES = ("config.yaml", "samples.jsonl", "report.json", "summary.json", "perf.sqlite", "report.html",
             "collection.json", "judge.jsonl", "run.json", ".lmgauge.lock", "changes.jsonl", "sweep.json")

__all__ = ["run_exporters", "parse_names", "export_target", "read_run", "redact", "RUN_FILES",
           "export_click_options", "export_settings"]


def read_run(run_dir: str | os.PathLike) -> RunFolder:
    """The run folder, read (config and report redacted); for exporters."""
    return load_run(run_dir)


def parse_names(names: str | Iterable[str] | None) -> list[str]:
    """``"json, sqlite"`` or ``["json", "sqlite,swanlab"]`` → ``["json", "sqlite", "swanlab"]``
    (order kept, duplicates dropped)."""
    if names is None:
        return []
    items = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def export_target(run_dir: str | os.PathLike, options: dict[str, Any], *, suffixes: tuple[str, ...],
                  default_file: str, file_in_folder: str, key: str | None = None) -> Path:
    """Where a file-writing exporter writes.

    - no ``export_path`` (nor ``<key>``): ``DIR/<default_file>`` inside the run folder;
    - a path ending in one of ``suffixes`` (e.g. ``results.sqlite``): that file;
    - an existing folder, or a path ending in ``/``: ``<folder>/<file_in_folder>``;
    - a path with another extension (another exporter's file, e.g. ``--export json,sqlite
      --export-path all.sqlite`` for the json exporter): ``<its folder>/<file_in_folder>``;
    - any other path: a new folder, ``<path>/<file_in_folder>``.

    A target that is one of the run's own files is refused.
    """
    run = Path(run_dir)
    raw = (options.get(key) if key else None) or options.get("export_path")
    if not raw:
        target = run / default_file
    else:
        text = str(raw)
        p = Path(text).expanduser()
        if p.is_dir() or text.endswith(("/", os.sep)):
            target = p / file_in_folder
        elif p.suffix.lower() in suffixes:
            target = p
        elif p.suffix:
            target = p.parent / file_in_folder
        else:
            target = p / file_in_folder
    try:
        same_folder = target.parent.resolve() == run.resolve()
    except OSError:
        same_folder = False
    if same_folder and target.name in RUN_FILES:
        raise ConfigError(f"export target {str(target)!r} is one of the run's own files",
                          "choose another --export-path; exporters never overwrite a run's files")
    return target


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe_os_error(exc: OSError) -> str:
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"cannot write{where}: {exc.strerror or exc}"


def run_exporters(names: list[str] | str | None, run_dir: str, options: dict[str, Any] | None = None) -> list[str]:
    """Run the named exporters on ``run_dir``; return one line per exporter (success: where
    it went; failure: ``lmgauge: warning: export NAME failed: why (how to fix)``). Never raises
    for an exporter's failure (KeyboardInterrupt excepted)."""
    wanted = parse_names(names)
    if not wanted:
        return []
    options = dict(options or {})
    lines: list[str] = []
    safe_dir = redact_text(str(run_dir))

    def fail(name: str, why: str) -> None:
        lines.append(f"lmgauge: warning: export {name} failed: {_one_line(why)}; "
                     f"the run's own files are unchanged in {safe_dir}")

    try:
        load_run(run_dir)  # one clear line for a folder that is not a run
    except LmgaugeError as exc:
        for name in wanted:
            fail(name, exc.line())
        return lines
    try:
        from .plugins import get_manager

        pm = get_manager()
    except LmgaugeError as exc:
        for name in wanted:
            fail(name, exc.line())
        return lines
    before = _snapshot(run_dir)
    from .options import values_for

    for name in wanted:
        try:
            obj = pm.get("exporters", name)
            exporter = obj() if isinstance(obj, type) else obj
            mine = {"export_path": options.get("export_path"), **values_for(exporter, options)}
            where = exporter.export(str(run_dir), mine)
            lines.append(f"export {name}: {_one_line(where) if where else 'done'}")
        except KeyboardInterrupt:
            raise
        except LmgaugeError as exc:
            fail(name, exc.line())
        except sqlite3.Error as exc:
            fail(name, f"SQLite error: {exc}")
        except OSError as exc:
            fail(name, _describe_os_error(exc) + " (choose a writable --export-path)")
        except ImportError as exc:
            fail(name, f"a module it needs is missing: {exc}")
        except Exception as exc:  # noqa: BLE001 - an exporter bug must not lose the run
            fail(name, f"internal error in the exporter: {exc.__class__.__name__}: {redact_text(str(exc))[:300]}")
        changed = _changed(before, _snapshot(run_dir))
        if changed:
            lines.append(f"lmgauge: warning: exporter {name} modified the run's own files: {', '.join(changed)} "
                         "(report this to the exporter's author)")
            before = _snapshot(run_dir)
    return lines


def _snapshot(run_dir: str) -> dict[str, tuple[int, int]]:
    out = {}
    for name in RUN_FILES:
        p = Path(run_dir) / name
        try:
            st = p.stat()
        except OSError:
            continue
        out[name] = (st.st_size, st.st_mtime_ns)
    return out


def _changed(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))


# --------------------------------------------------------------------------------------
# for the eval/perf commands
def export_click_options(command: Callable) -> Callable:
    """Decorator adding ``--export NAMES`` and ``--export-path P`` to a click command (each
    exporter's own options come with the plugin options)."""
    import click

    opts = [
        click.option("--export", "export", default=None, metavar="NAMES",
                     help="Exporters to run at the end, comma-separated, e.g. json,sqlite (see `lmgauge plugins`)."),
        click.option("--export-path", "export_path", default=None, metavar="PATH",
                     help="Where exporters write: a file (results.sqlite, run.json) or a folder. Default: inside the run folder."),
    ]
    for opt in reversed(opts):
        command = opt(command)
    return command


def export_settings(values: dict[str, Any], explicit: dict[str, Any] | None = None,
                    pm: Any = None) -> tuple[list[str], dict[str, Any]]:
    """``(names, options)`` for :func:`run_exporters` from a run's settings (``export``,
    ``export_path`` and plugin option values). An exporter whose own option is in
    ``explicit`` (set by the user) but which ``export`` does not name is added."""
    names = parse_names(values.get("export"))
    options = {k: v for k, v in values.items() if k not in ("export",)}
    if explicit and pm is not None:
        for key in explicit:
            d = pm.options.by_name.get(key)
            for family, name in (d.owners if d is not None else ()):
                if family == "exporters" and name not in names:
                    names.append(name)
    return names, options
