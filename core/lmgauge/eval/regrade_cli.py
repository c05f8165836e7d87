"""``lmgauge regrade DIR``: score a finished eval run again with the graders installed now (and
optionally an LLM judge), without calling the model; the result is a new folder (docs/judge.md)."""
from __future__ import annotations

from typing import Any

import click

from ..options import PluginCommand, pop_plugin_values


@click.command("regrade", cls=PluginCommand)
@click.argument("run_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--output", default=None, type=click.Path(file_okay=False),
              help="New folder for the re-graded run (default: DIR/regrade-YYYYmmdd-HHMMSS).")
@click.option("--judge-model", "judge_model", default=None,
              help="Also ask this judge model (served by --judge-backend at --judge-base-url); no judge without it.")
@click.option("--judge-backend", "judge_backend", default=None,
              help="Backend plugin serving the judge (default: the run's judge backend, else the run's backend).")
@click.option("--judge-base-url", "judge_base_url", default=None,
              help="Judge server URL (default: the run's judge URL, else the run's own server).")
@click.option("--judge-api-key", "judge_api_key", default=None,
              help="Judge API key (default: $LMGAUGE_JUDGE_API_KEY; the run's key when the judge is the run's server). Never written.")
@click.option("--judge-mode", "judge_mode", type=click.Choice(["fallback", "always"]), default=None,
              help="fallback: ask only about samples the rule grader could not decide; always: the judge's verdict is the score.")
@click.option("--judge-concurrency", "judge_concurrency", type=click.IntRange(min=1), default=None,
              help="Judge requests in flight (default 16).")
@click.option("--grading-workers", "grading_workers", type=click.IntRange(min=1), default=None,
              help="Grading processes (default: CPU count, at most 4).")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True, help="Changed samples to list.")
def regrade(run_dir: str, output: str | None, show: int, grading_workers: int | None, **kwargs: Any) -> None:
    """Score every sample of a finished eval run again, without calling the model.

    \b
    lmgauge regrade runs/eval-M-20260101-120000
    lmgauge regrade DIR --judge-model judge --judge-base-url http://127.0.0.1:8001/v1
    lmgauge regrade DIR --judge-model judge --judge-mode always --output runs/judged

    Writes DIR/regrade-TIME/ (config.yaml, samples.jsonl, report.json, report.html,
    changes.jsonl) and leaves DIR's own files as they are. Judge verdicts cached in DIR (or an
    earlier regrade) are reused, never asked again.
    """
    import asyncio

    from ..plugins import get_manager
    from .judge import agreement_line
    from .regrade import regrade as run_regrade, render_regrade

    plugin_values = pop_plugin_values(click.get_current_context(), kwargs)
    result = asyncio.run(run_regrade(run_dir, get_manager(), output=output, judge=kwargs,
                                     grading_workers=grading_workers, options=plugin_values))
    click.echo(f"regrade of {result.source} (the model was not called):")
    click.echo(render_regrade(result, show))
    if result.report.judge is not None:
        click.echo(agreement_line(result.report.judge))
    for line in result.warnings:
        click.echo(f"lmgauge: warning: {line}", err=True)
    click.echo(f"regrade folder: {result.out}")
    click.echo(f"html report: {result.out / 'report.html'}")
