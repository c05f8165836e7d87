"""The ``lmgauge`` command line.

Built-in commands: ``eval``, ``perf``, ``plugins``, ``report``. Plugins add commands through
``register_commands``. Every error the user can fix is printed as one line
(``lmgauge: error: ...``) with a non-zero exit code; ``LMGAUGE_DEBUG=1`` shows tracebacks.
Plugins are loaded lazily: ``lmgauge --help`` imports no torch/transformers.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from . import __version__
from .errors import LmgaugeError, PluginError
from .export import export_click_options

OPTIONAL_COMMANDS = {"perf": "lmgauge.perf.cli", "report": "lmgauge.htmlreport.cli"}
BACKEND_COMMANDS = ("eval", "perf")


class LmgaugeGroup(click.Group):
    _plugins_added = False

    def _optional(self, name: str) -> click.Command | None:
        modname = OPTIONAL_COMMANDS.get(name)
        if modname is None:
            return None
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name and modname.startswith(exc.name):
                return None
            raise
        return getattr(module, name)

    def _add_plugin_commands(self, strict: bool) -> None:
        if self._plugins_added:
            return
        from .plugins import get_manager

        try:
            get_manager().call_commands(self)
        except PluginError:
            if strict:
                raise
            return
        self._plugins_added = True

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(strict=False)
        names = set(super().list_commands(ctx))
        names.update(n for n in OPTIONAL_COMMANDS if self._optional(n) is not None)
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name) or self._optional(name)
        if cmd is None:
            self._add_plugin_commands(strict=True)
            cmd = super().get_command(ctx, name)
        if cmd is not None and name in BACKEND_COMMANDS:
            from .cli_common import add_backend_options
            from .plugins import get_manager

            add_backend_options(cmd, get_manager())
        return cmd


@click.group(cls=LmgaugeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lmgauge")
def cli() -> None:
    """Evaluate reasoning models and load-test inference servers.

    \b
    lmgauge eval    score a model on MATH-500, GPQA-Diamond, AIME 2024/2025 ...
    lmgauge perf    load-test an OpenAI-compatible server (TTFT, TPOT, throughput)
    lmgauge plugins list installed plugins and what they register
    lmgauge report  one HTML page (and terminal tables) for one or more run folders
    """


# --------------------------------------------------------------------------------------
@cli.command("eval", context_settings={"show_default": False})
@click.option("--backend", default=None, help="Backend plugin name (default: openai). See `lmgauge plugins`.")
@click.option("--base-url", default=None, help="Server URL, e.g. http://127.0.0.1:8000/v1 (or the full /v1/chat/completions URL).")
@click.option("--model", default=None, help="Model name as served (or a path/alias for in-process backends).")
@click.option("--api-key", default=None, help="API key (default: $LMGAUGE_API_KEY or $OPENAI_API_KEY). Never written anywhere.")
@click.option("--benchmark", "benchmark", multiple=True, help="Benchmark name (repeatable), e.g. math_500, gpqa_diamond, aime24, aime25.")
@click.option("--repeats", type=int, default=None, help="Samples per question (AveragePass@1 over them; pass@k, maj@k). Default 1.")
@click.option("--concurrency", type=int, default=None, help="Requests in flight. Default 32.")
@click.option("--limit", type=int, default=None, help="Only the first N questions of each benchmark.")
@click.option("--dataset-path", "dataset_path", multiple=True, metavar="BENCH=PATH",
              help="Local data file for a benchmark instead of the hub (jsonl/json/csv/parquet). Repeatable.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default: server's).")
@click.option("--top-p", "top_p", type=float, default=None, help="Nucleus sampling p (default: server's).")
@click.option("--max-tokens", "max_tokens", type=int, default=None, help="Max generated tokens per answer (reasoning models need many).")
@click.option("--seed", type=int, default=None, help="Sampling seed (repeat r of a question uses seed + r).")
@click.option("--extra-body", "extra_body", default=None, metavar="JSON", help="Extra JSON fields for every request, e.g. '{\"reasoning_effort\": \"high\"}'.")
@click.option("--system-prompt", "system_prompt", default=None, help="System message prepended to every question.")
@click.option("--api", type=click.Choice(["chat", "completions"]), default=None, help="Chat or text completions API. Default chat.")
@click.option("--metric", "metric", multiple=True, help="Metric name (repeatable; default: AveragePass@1, pass@k, maj@k).")
@click.option("--output", default=None, type=click.Path(file_okay=False), help="Run folder (default: runs/eval-MODEL-TIME).")
@click.option("--resume", default=None, type=click.Path(file_okay=False), help="Continue the run in this folder: only missing samples are run.")
@click.option("--collection", default=None, type=click.Path(dir_okay=False), help="Collection file (YAML/JSON) mixing benchmarks into one eval.")
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="YAML file with any of these settings (flags override it).")
@click.option("--retries", type=int, default=None, help="Retries per request on 429/5xx/connection errors/timeouts. Default 5.")
@click.option("--timeout", type=float, default=None, help="Per-request read timeout in seconds. Default 3600.")
@click.option("--grading-workers", "grading_workers", type=int, default=None, help="Grading processes (default: CPU count, at most 4).")
@click.option("--progress/--no-progress", default=None, help="Show the progress line (default: on).")
@export_click_options
def eval_command(**kwargs: Any) -> None:
    """Score a model on benchmarks through a backend.

    \b
    lmgauge eval --base-url http://127.0.0.1:8000/v1 --model M --benchmark math_500 --repeats 5
    lmgauge eval --base-url URL --model M --collection r1-math.yaml --max-tokens 32768
    lmgauge eval --resume runs/eval-M-20260101-120000
    """
    from .cli_common import parse_json_object, parse_kv, pop_backend_options
    from .eval.api import merge_settings
    from .eval.runner import print_report, run_eval
    from .plugins import get_manager

    ctx = click.get_current_context()
    backend_opts = pop_backend_options(ctx.command, kwargs)
    kwargs["dataset_path"] = parse_kv(kwargs.get("dataset_path"), "--dataset-path")
    kwargs["extra_body"] = parse_json_object(kwargs.get("extra_body"), "--extra-body")
    kwargs["benchmark"] = list(kwargs.get("benchmark") or ())
    kwargs["metric"] = list(kwargs.get("metric") or ())
    if kwargs.get("export"):
        kwargs["export"] = [x.strip() for x in kwargs["export"].split(",") if x.strip()]
    if backend_opts:
        kwargs["backend_options"] = backend_opts
    config = merge_settings(kwargs)
    pm = get_manager()
    try:
        report, out = run_eval(config, pm)
    except KeyboardInterrupt:
        out = config.resume or config.output
        click.echo(f"lmgauge: interrupted; finished samples are saved in {out}/samples.jsonl. "
                   f"Continue with: lmgauge eval --resume {out}", err=True)
        sys.exit(130)
    print_report(report, out)
    finish_run(str(out), config.to_dict())


def finish_run(run_dir: str, settings: dict[str, Any]) -> None:
    """Write DIR/report.html and run the exporters; failures are one line each, the run's
    own files stay."""
    try:
        from .htmlreport import write_html_report
    except ImportError:
        write_html_report = None
    if write_html_report is not None:
        try:
            path = write_html_report([run_dir], os.path.join(run_dir, "report.html"))
            click.echo(f"html report: {path}")
        except LmgaugeError as exc:
            click.echo(f"lmgauge: warning: HTML report not written: {exc.line()}", err=True)
    from .export import export_settings, run_exporters

    names, options = export_settings(settings)
    for line in run_exporters(names, run_dir, options):
        click.echo(line, err=line.startswith("lmgauge: warning"))


# --------------------------------------------------------------------------------------
@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins: distribution, version, hooks, registered names, errors."""
    from .plugins import get_manager

    pm = get_manager()
    if as_json:
        import orjson

        click.echo(orjson.dumps([p.as_dict() for p in pm.plugins], option=orjson.OPT_INDENT_2).decode())
        return
    by_dist: dict[tuple[str, str], list[Any]] = {}
    for p in pm.plugins:
        by_dist.setdefault((p.distribution, p.version), []).append(p)
    for (dist, version), plugins in sorted(by_dist.items()):
        click.echo(f"{dist} {version}")
        for p in plugins:
            if p.error:
                click.echo(f"  {p.name:<16} BROKEN: {p.error}")
                continue
            regs = "; ".join(f"{fam}: {', '.join(names)}" for fam, names in p.registers.items()) or "-"
            click.echo(f"  {p.name:<16} hooks: {', '.join(p.hooks) or '-'}")
            click.echo(f"  {'':<16} registers {regs}")


# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    debug = bool(os.environ.get("LMGAUGE_DEBUG"))
    try:
        cli.main(args=argv, prog_name="lmgauge", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("lmgauge: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        msg = " ".join(exc.format_message().split())
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"lmgauge: error: {msg}{where}", err=True)
        sys.exit(exc.exit_code)
    except LmgaugeError as exc:
        if debug:
            raise
        click.echo(f"lmgauge: error: {exc.line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("lmgauge: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - never a raw traceback for users
        if debug:
            raise
        text = " ".join(str(exc).split())[:300]
        click.echo(f"lmgauge: internal error: {exc.__class__.__name__}: {text} "
                   "(set LMGAUGE_DEBUG=1 for the traceback and please report it)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
