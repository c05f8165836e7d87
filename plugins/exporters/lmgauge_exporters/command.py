"""``lmgauge export DIR [DIR ...] --to json,sqlite,swanlab [--export-path P]``: export run
folders after the fact, e.g. several runs into one SQLite file to compare them."""
from __future__ import annotations

from typing import Any

import click

from lmgauge import hookimpl


@click.command("export")
@click.argument("run_dirs", nargs=-1, required=True, metavar="DIR [DIR ...]")
@click.option("--to", "to", required=True, metavar="NAMES", help="Exporters, comma-separated: json, sqlite, swanlab.")
@click.option("--export-path", "export_path", default=None, metavar="PATH",
              help="A file (results.sqlite, run.json) or folder; default: inside each run folder.")
@click.option("--swanlab-mode", "swanlab_mode", type=click.Choice(["cloud", "local", "offline"]), default=None,
              help="SwanLab mode (cloud needs SWANLAB_API_KEY).")
@click.option("--swanlab-project", "swanlab_project", default=None, metavar="NAME", help="SwanLab project.")
def export(run_dirs: tuple[str, ...], to: str, **values: Any) -> None:
    """Run exporters on finished run folders.

    \b
    lmgauge export runs/eval-A runs/eval-B --to sqlite --export-path compare.sqlite
    lmgauge export runs/perf-vllm --to json,swanlab --swanlab-mode offline

    Exit code 1 when any export failed (the run folders are never changed).
    """
    from lmgauge.export import export_settings, run_exporters

    names, options = export_settings({"export": to, **values})
    failed = False
    for d in run_dirs:
        for line in run_exporters(names, d, options):
            failed |= line.startswith("lmgauge: warning:")
            click.echo(line, err=line.startswith("lmgauge: warning:"))
    if failed:
        raise SystemExit(1)


@hookimpl
def register_commands(cli):
    cli.add_command(export)
