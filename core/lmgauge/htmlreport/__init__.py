"""The report of one or several run folders: one self-contained HTML file (inline CSS, JS
and SVG charts; works offline from file://) and terminal tables.

- :func:`write_html_report` — every eval and perf run calls it at the end for DIR/report.html.
- :func:`render_terminal` — the tables ``lmgauge report`` prints.
- ``lmgauge report DIR [DIR ...] [-o FILE]`` (lmgauge.htmlreport.cli).

The page's perf section is :func:`lmgauge.app.perfviews.perf_view`, the data the live app
(``lmgauge serve``) renders too, built from the perf metric declarations (a plugin's metric
shows in both with no change): at-a-glance cards, sweep charts, the summary table with its best
rows, the best configuration, the SLA frontier, per-level percentile, turn and endpoint tables,
and the timelines. ``templates/perf.html.j2`` only lays it out in the report's style. The
reasoning analytics and sweep sections come from :mod:`lmgauge.app.analyticsviews`, two perf
runs' B/A from :func:`lmgauge.perf.compare.perf_compare_view`; scores, health, judge and the
embedded samples from ``page.py``. The samples are bounded: long texts cut to head and tail
(:func:`lmgauge.app.views.cut_text`), the page near 10 MB however large the journal, unless
``--full-samples``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError, LmgaugeError
from ..files import atomic_write
from ..redaction import redact
from ..runfolder import RunFolder, load_run, run_labels

__all__ = ["write_html_report", "render_html", "render_terminal", "load_run", "load_runs", "redact",
           "run_labels", "RunFolder"]


def load_runs(run_dirs: list[str]) -> list[RunFolder]:
    if not run_dirs:
        raise DataError("no run folder given", "pass one or more folders written by lmgauge eval or perf")
    return [load_run(d) for d in run_dirs]


def render_html(run_dirs: list[str], full_samples: bool = False) -> str:
    """The report page for these run folders, as a string (long sample texts cut to head and
    tail unless ``full_samples``)."""
    from .page import render_page

    return render_page(load_runs(run_dirs), full_samples)


def render_terminal(run_dirs_or_runs: list) -> str:
    """Terminal tables for run folders (paths or loaded :class:`RunFolder` objects)."""
    from .terminal import render_terminal as _render

    runs = [r if isinstance(r, RunFolder) else load_run(r) for r in run_dirs_or_runs]
    return _render(runs)


def refuse_run_file(out: Path) -> None:
    """A report never overwrites a run's own files: a target inside a run folder other than its
    report.html, or a target named like one (config.yaml, samples.jsonl, …), is refused."""
    from ..export import RUN_FILES
    from ..runfolder import kind_of

    if out.name == "report.html":
        return
    in_run = out.parent.is_dir() and kind_of(out.parent)[0] is not None
    if out.name in RUN_FILES or (in_run and out.exists()):
        raise LmgaugeError(f"-o {out} would overwrite a run's own file",
                           "write the report elsewhere, e.g. -o report-ab.html (DIR/report.html is the default)")


def write_html_report(run_dirs: list[str], out_path: str, full_samples: bool = False) -> str:
    """Write one self-contained HTML report of ``run_dirs`` to ``out_path`` (atomically: a
    reader never sees half a file) and return its path. Long sample texts are cut to head and
    tail, so the page stays near 10 MB however large the journals; ``full_samples`` embeds
    every character. Bad input raises a one-line :class:`lmgauge.errors.LmgaugeError`."""
    from .page import render_page

    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise LmgaugeError(f"cannot write the report to {str(out)!r}: it is a folder", "give a file name, e.g. -o report.html")
    refuse_run_file(out)
    runs = load_runs([str(d) for d in run_dirs])
    text = render_page(runs, full_samples)
    try:
        atomic_write(out, text)
    except OSError as exc:
        raise LmgaugeError(f"cannot write the report to {str(out)!r}: {exc.strerror or exc}",
                           "choose a writable path with -o") from None
    return str(out)
