"""``--export wandb`` (extra ``lmgauge-exporters[wandb]``): one Weights & Biases run per lmgauge run.

- eval: one step holding every score row as ``<benchmark>/<metric>`` (OVERALL) or
  ``<benchmark>/<subset>/<metric>`` with ``.../ci_low``/``ci_high`` and
  ``<benchmark>/health/...`` (the same keys as the swanlab exporter), plus the per-sample
  table ``samples`` (:data:`SAMPLE_COLUMNS`);
- perf: one step per concurrency level (or request rate), in sweep order, charted against
  ``concurrency`` (or ``rate``): ``rps``, ``output_tok_s``, ``total_tok_s``, ``success_rate``
  and ``ttft|tpot|itl|latency/{mean,p50,p90,p99}``;
- the run config is the run's config with secrets removed, plus ``lmgauge.{kind, model, ...}``;
- ``DIR/report.html`` goes into an artifact of type ``lmgauge-report``.

Modes (``--wandb-mode``, else ``WANDB_MODE``): ``online`` (default; needs ``WANDB_API_KEY``
or ``wandb login``) and ``offline`` (files under ``<dir>/wandb/offline-run-*``, uploaded later
with ``wandb sync``). ``<dir>`` is ``--wandb-dir``, else ``--export-path``, else the run folder.
Nothing of the machine is collected: no host name, system metrics or metadata (command line,
environment), no git state, code, requirements or terminal output (W&B still records its own
telemetry: Python version, platform, which W&B features were used).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any

import click

from lmgauge.plugin import ConfigError, Exporter, LmgaugeError, RunFolder, export_target, hookimpl, load_run, redact

from .tracking import SAMPLE_COLUMNS, default_run_name, eval_metrics, perf_steps, run_config, sample_rows

WANDB_MODES = ("online", "offline")

#: the per-sample table, one row per (benchmark, sample_id, repeat)
def _artifact_name(run: RunFolder) -> str:
    """W&B artifact names allow letters, digits, ``-``, ``_`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"lmgauge-{run.kind}-{run.name}").strip("-.")[:120]


def _settings(wandb: Any) -> Any:
    """Settings that collect nothing about the machine (``host=""``: not even its name) and
    print nothing."""
    return wandb.Settings(host="", x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True,
                          disable_git=True, disable_code=True, save_code=False, disable_job_creation=True,
                          x_save_requirements=False, console="off", silent=True)


def _log_run(wandb: Any, wb: Any, run: RunFolder, steps: list[dict[str, float]], rows: list[list[Any]],
             in_run_table: bool, report: Path) -> None:
    """Everything one W&B run holds: the steps, the per-sample table (a run table, or in the
    artifact when it has more rows than W&B allows there), ``report.html`` in the artifact."""
    if run.kind == "perf":
        axis = run.axis()
        wb.define_metric(axis)
        wb.define_metric("*", step_metric=axis)
    for step, metrics in enumerate(steps):
        wb.log(metrics, step=step)
    artifact = wandb.Artifact(_artifact_name(run), type="lmgauge-report",
                              description=f"lmgauge {run.kind} run {run.name}")
    if rows:
        table = wandb.Table(columns=list(SAMPLE_COLUMNS), data=rows, allow_mixed_types=True)
        if in_run_table:
            wb.log({"samples": table}, step=len(steps) - 1)
        else:
            artifact.add(table, "samples")
    if report.is_file():
        artifact.add_file(str(report), name="report.html")
    if artifact.manifest.entries:
        wb.log_artifact(artifact)


class WandbExporter(Exporter):
    name = "wandb"
    description = "Weights & Biases run: scores, per-sample table, perf levels as steps, report (online|offline)"
    options = [
        click.Option(["--wandb-mode", "wandb_mode"], type=click.Choice(WANDB_MODES), default=None,
                     help="W&B: online (needs WANDB_API_KEY or `wandb login`) or offline (files to "
                          "`wandb sync` later). Default: WANDB_MODE, else online."),
        click.Option(["--wandb-project", "wandb_project"], default=None, metavar="NAME",
                     help="W&B project (default: WANDB_PROJECT, else lmgauge-eval / lmgauge-perf)."),
        click.Option(["--wandb-entity", "wandb_entity"], default=None, metavar="NAME",
                     help="W&B entity, a team or user (default: WANDB_ENTITY, else your default entity)."),
        click.Option(["--wandb-run-name", "wandb_run_name"], default=None, metavar="NAME",
                     help="W&B run name (default: <model>-<run folder>)."),
        click.Option(["--wandb-dir", "wandb_dir"], default=None, metavar="DIR",
                     help="Folder W&B writes under (its files go to DIR/wandb/); default: --export-path, "
                          "else the run folder."),
    ]

    def export(self, run_dir: str, options: dict[str, Any]) -> str:
        env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
        mode = options.get("wandb_mode") or (env_mode if env_mode in WANDB_MODES else "online")
        if mode not in WANDB_MODES:
            raise ConfigError(f"unknown W&B mode {mode!r}", f"use --wandb-mode {'|'.join(WANDB_MODES)}")
        try:
            import wandb
        except ImportError:
            raise LmgaugeError("the wandb exporter needs the wandb package, which is not installed",
                               "pip install 'lmgauge-exporters[wandb]'") from None
        run = load_run(run_dir)
        project = options.get("wandb_project") or os.environ.get("WANDB_PROJECT") or f"lmgauge-{run.kind}"
        entity = options.get("wandb_entity") or None
        run_name = options.get("wandb_run_name") or default_run_name(run)
        if options.get("wandb_dir"):
            root = Path(str(options["wandb_dir"])).expanduser()
        else:
            root = export_target(run_dir, options, suffixes=(), default_file="wandb", file_in_folder="wandb").parent
        report = Path(run_dir) / "report.html"
        steps = [eval_metrics(run)] if run.kind == "eval" else perf_steps(run)
        rows = sample_rows(run) if run.kind == "eval" else []
        in_run_table = len(rows) <= wandb.Table.MAX_ROWS
        owns_service = wandb.run is None  # nobody else in this process is using W&B
        root.mkdir(parents=True, exist_ok=True)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    wb = wandb.init(mode=mode, project=project, entity=entity, name=run_name, dir=str(root),
                                    config=run_config(run), job_type=run.kind, tags=["lmgauge", run.kind],
                                    notes=f"lmgauge {run.kind} run {run.name}", reinit="create_new",
                                    settings=_settings(wandb))
                    try:
                        _log_run(wandb, wb, run, steps, rows, in_run_table, report)
                        offline_dir, url = Path(wb.dir).parent, wb.url or wb.path
                    finally:
                        wb.finish()
                finally:
                    if owns_service:  # returns once W&B's service has written every record of the run
                        wandb.teardown()
        except (LmgaugeError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - W&B errors become one line
            text = redact(" ".join(str(exc).split()))[:300] or exc.__class__.__name__
            hint = ("set WANDB_API_KEY or run `wandb login`, check --wandb-entity/--wandb-project and the "
                    "network, or use --wandb-mode offline" if mode == "online"
                    else "check --wandb-project, --wandb-run-name and --wandb-dir")
            raise LmgaugeError(f"W&B failed ({mode} mode): {exc.__class__.__name__}: {text}", hint) from None
        what = [f"{len(steps)} step{'s' if len(steps) != 1 else ''}"]
        if rows:
            what.append(f"samples table ({len(rows)} rows{'' if in_run_table else ', in the artifact'})")
        if report.is_file():
            what.append("report.html artifact")
        summary = f"project {project}, run {run_name} ({', '.join(what)})"
        if mode == "online":
            return f"online: {summary}: {url}"
        return f"offline: {summary} in {offline_dir} (`wandb sync {offline_dir}` to upload)"


@hookimpl
def register_exporters(register):
    register(WandbExporter)
