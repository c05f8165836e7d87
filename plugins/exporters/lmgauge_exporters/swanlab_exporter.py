"""``--export swanlab`` (extra ``lmgauge-exporters[swanlab]``): one SwanLab experiment per run.

- eval: every score row as ``<benchmark>/<metric>`` (OVERALL) or ``<benchmark>/<subset>/<metric>``,
  with ``.../ci_low``/``ci_high``, plus per-benchmark ``truncated_rate`` and ``errors``;
- perf: one step per concurrency level (or request rate), in sweep order: ``concurrency``,
  ``rate``, ``rps``, ``output_tok_s``, ``total_tok_s``, ``success_rate`` and
  ``ttft|tpot|itl|latency/{mean,p50,p90,p99}``;
- the experiment config is the run config with secrets removed, plus model/backend/url.

Options (this exporter's own, see ``lmgauge eval --help``): ``--swanlab-mode`` (or
``LMGAUGE_SWANLAB_MODE``): ``cloud`` (upload; API key from ``--swanlab-api-key`` or
``SWANLAB_API_KEY``), ``local`` (files plus the local dashboard, which needs
``swanlab[dashboard]``) and ``offline`` (files only, upload later with ``swanlab sync DIR``);
``--swanlab-project``, ``--swanlab-experiment``. EvalScope's ``--swanlab-api-key`` given alone
adds this exporter to the run.
Files go to ``--export-path`` (a folder) or ``DIR/swanlog``. Nothing of the machine is sent:
no command line, environment, hardware, git or terminal capture.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import click

from lmgauge.plugin import ConfigError, Exporter, LmgaugeError, export_target, hookimpl, load_run

from .tracking import default_run_name, eval_metrics, perf_steps, run_config

SWANLAB_MODES = ("cloud", "local", "offline")


def _settings(swanlab: Any) -> Any:
    """SwanLab settings that collect nothing about the machine (command line, env, hardware,
    git, pip freeze, terminal output) and never prompt; None when this SwanLab version has
    no such settings (the command line is still hidden, see export())."""
    try:
        return swanlab.Settings(
            interactive=False,
            probe=swanlab.Settings.Probe(runtime=False, requirements=False, monitor=False, hardware=False,
                                         git=False, conda=False),
            terminal=swanlab.Settings.Terminal(proxy_type="none"))
    except Exception:  # noqa: BLE001 - older/newer SwanLab: fall back to defaults
        return None


class SwanLabExporter(Exporter):
    name = "swanlab"
    description = "SwanLab experiment: eval scores, or one step per perf level (cloud|local|offline)"
    options = [
        click.Option(["--swanlab-mode", "swanlab_mode"], type=click.Choice(SWANLAB_MODES), default=None,
                     help="cloud (needs an API key), local, or offline (files to `swanlab sync` later). "
                          "Default $LMGAUGE_SWANLAB_MODE, else cloud."),
        click.Option(["--swanlab-project", "swanlab_project"], default=None, metavar="NAME",
                     help="SwanLab project (default lmgauge-eval / lmgauge-perf)."),
        click.Option(["--swanlab-experiment", "swanlab_experiment"], default=None, metavar="NAME",
                     help="Experiment name (default MODEL-RUNFOLDER)."),
        click.Option(["--swanlab-api-key", "swanlab_api_key"], default=None, metavar="KEY",
                     help="Cloud mode's API key (default $SWANLAB_API_KEY); never written anywhere. "
                          "Given alone it adds this exporter, as in EvalScope."),
    ]

    def export(self, run_dir: str, options: dict[str, Any]) -> str:
        mode = options.get("swanlab_mode") or os.environ.get("LMGAUGE_SWANLAB_MODE") or "cloud"
        if mode not in SWANLAB_MODES:
            raise ConfigError(f"unknown SwanLab mode {mode!r}", f"use --swanlab-mode {'|'.join(SWANLAB_MODES)}")
        try:
            import swanlab
        except ImportError:
            raise LmgaugeError("the swanlab exporter needs the swanlab package, which is not installed",
                               "pip install 'lmgauge-exporters[swanlab]'") from None
        api_key = (options.get("swanlab_api_key") or os.environ.get("SWANLAB_API_KEY", "")).strip()
        if mode == "cloud" and not api_key:
            raise LmgaugeError("SwanLab cloud mode needs an API key: neither --swanlab-api-key nor SWANLAB_API_KEY is set",
                               "pass --swanlab-api-key, or use --swanlab-mode offline and `swanlab sync` later")
        run = load_run(run_dir)
        project = options.get("swanlab_project") or os.environ.get("LMGAUGE_SWANLAB_PROJECT") or f"lmgauge-{run.kind}"
        experiment = options.get("swanlab_experiment") or default_run_name(run)
        log_dir = export_target(run_dir, options, suffixes=(), default_file="swanlog", file_in_folder="swanlog",
                                key="swanlab_path")
        config = run_config(run)
        if run.kind == "eval":
            steps = [eval_metrics(run)]
        else:
            steps = perf_steps(run)
        out = io.StringIO()
        argv = sys.argv
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            # the command line may hold --api-key: SwanLab must not see it
            sys.argv = ["lmgauge"]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                if mode == "cloud":
                    swanlab.login(api_key=api_key, save=False)
                kwargs: dict[str, Any] = dict(project=project, name=experiment, config=config,
                                              mode="online" if mode == "cloud" else mode, log_dir=str(log_dir),
                                              description=f"lmgauge {run.kind} run {run.name}")
                settings = _settings(swanlab)
                if settings is not None:
                    kwargs["settings"] = settings
                if hasattr(swanlab, "has_run") and swanlab.has_run():
                    kwargs["reinit"] = True
                swanlab.init(**kwargs)
                try:
                    for step, metrics in enumerate(steps):
                        if metrics:
                            swanlab.log(metrics, step=step)
                finally:
                    swanlab.finish()
        except LmgaugeError:
            raise
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - SwanLab errors become one line
            text = " ".join(str(exc).split())[:300] or exc.__class__.__name__
            raise LmgaugeError(f"SwanLab failed ({mode} mode): {exc.__class__.__name__}: {text}",
                               "check SWANLAB_API_KEY and the network, or use --swanlab-mode offline") from None
        finally:
            sys.argv = argv
        where = f"project {project}, experiment {experiment}"
        if mode == "cloud":
            return f"cloud: {where}"
        hint = "`swanlab sync` it to upload" if mode == "offline" else "`swanlab watch` it (needs swanlab[dashboard])"
        return f"{mode}: {where}, {len(steps)} step{'s' if len(steps) != 1 else ''} in {Path(log_dir)} ({hint})"


@hookimpl
def register_exporters(register):
    register(SwanLabExporter)
