"""``lmgauge export DIR [DIR ...] --to json,sqlite,swanlab [--export-path P] [exporter options]``:
export run folders after the fact, e.g. several runs into one SQLite file to compare them.

It takes every exporter's own options. An option the run was made with (DIR/config.yaml) is
used unless given again on this command line."""
from __future__ import annotations

from typing import Any

import click

from lmgauge.plugin import PluginCommand, hookimpl, pop_plugin_values


@click.command("export", cls=PluginCommand, plugin_families=("exporters",))
@click.argument("run_dirs", nargs=-1, required=True, metavar="DIR [DIR ...]")
@click.option("--to", "to", required=True, metavar="NAMES", help="Exporters, comma-separated, e.g. json,sqlite (see `lmgauge plugins`).")
@click.option("--export-path", "export_path", default=None, metavar="PATH",
              help="A file (results.sqlite, run.json) or folder; default: inside each run folder.")
def export(run_dirs: tuple[str, ...], to: str, **values: Any) -> None:
    """Run exporters on finished run folders.

    \b
    lmgauge export runs/eval-A runs/eval-B --to sqlite --export-path compare.sqlite
    lmgauge export runs/perf-vllm --to json,swanlab --swanlab-mode offline

    Exit code 1 when any export failed (the run folders are never changed).
    """
    from lmgauge.plugin import export_settings, run_exporters, saved_settings

    given = pop_plugin_values(click.get_current_context(), values)
    failed = False
    for d in run_dirs:
        names, options = export_settings({**saved_settings(d), "export": to, **values, **given})
        for line in run_exporters(names, d, options):
            failed |= line.startswith("lmgauge: warning:")
            click.echo(line, err=line.startswith("lmgauge: warning:"))
    if failed:
        raise SystemExit(1)


@hookimpl
def register_commands(cli):
    cli.add_command(export)
