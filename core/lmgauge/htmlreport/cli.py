"""``lmgauge report DIR [DIR ...] [-o FILE]``: one self-contained HTML page and the terminal
tables for one or several run folders (eval and/or perf, side by side)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, metavar="DIR [DIR ...]")
@click.option("-o", "--output", default=None, metavar="FILE",
              help="HTML file to write (default: DIR/report.html for one folder, ./lmgauge-report.html for several).")
@click.option("--tables/--no-tables", default=True, help="Print the terminal tables (default: on).")
@click.option("--full-samples", is_flag=True,
              help="Embed every sample text whole (default: long texts cut to head and tail, the page near 10 MB "
                   "however large the run; `lmgauge serve` shows them whole).")
def report(run_dirs: tuple[str, ...], output: str | None, tables: bool, full_samples: bool) -> None:
    """One HTML report (and terminal tables) for one or more run folders.

    \b
    lmgauge report runs/eval-A                       rewrite runs/eval-A/report.html
    lmgauge report runs/eval-A runs/eval-B -o ab.html two models side by side
    lmgauge report runs/perf-vllm runs/perf-sglang   two backends, charts overlaid

    Two eval runs of the same questions also get the paired comparison of `lmgauge compare`;
    two perf runs of the same workload its B/A ratios per level with confidence intervals.

    The page works offline (file://): no CDN, inline CSS/JS/SVG. Long responses and reasoning
    are cut to head and tail with their full length shown, so the page stays near 10 MB however
    large the journal; --full-samples embeds everything.
    """
    from . import load_runs, write_html_report
    from .terminal import render_terminal

    runs = load_runs(list(run_dirs))
    if output is None:
        output = str(Path(run_dirs[0]) / "report.html") if len(run_dirs) == 1 else "lmgauge-report.html"
    path = write_html_report(list(run_dirs), output, full_samples)
    if tables:
        click.echo(render_terminal(runs))
        evals = [r for r in runs if r.kind == "eval"]
        if len(evals) == 2:  # two eval runs: the paired comparison, as `lmgauge compare` prints it
            from ..errors import LmgaugeError
            from ..eval.compare import compare_runs, compare_text

            try:
                click.echo(compare_text(compare_runs(*evals)))
            except LmgaugeError as exc:
                click.echo(f"paired comparison not computed: {exc.line()}")
        perfs = [r for r in runs if r.kind == "perf"]
        if len(perfs) == 2:  # two perf runs: B/A per level with CIs, as `lmgauge compare` prints it
            from ..errors import LmgaugeError
            from ..perf.compare import compare_perf_runs

            try:
                click.echo(compare_perf_runs(*perfs).text())
            except LmgaugeError as exc:
                click.echo(f"perf comparison not computed: {exc.line()}")
    click.echo(f"html report: {path}")
