"""The ``lmgauge`` command line.

Built-in commands: ``eval``, ``perf``, ``plugins``, ``report``, ``compare``, ``regrade``.
Plugins add commands through ``register_commands``. Every error the user can fix is printed as
one line (``lmgauge: error: ...``) with a non-zero exit code; ``LMGAUGE_DEBUG=1`` shows
tracebacks. Plugins are loaded lazily: ``lmgauge --help`` imports no torch/transformers.
Commands built on :class:`lmgauge.options.PluginCommand` take the options that plugins declare
(attached when the command is looked up). ``--plugin FILE.py`` (anywhere on the command line,
repeatable) loads a one-off plugin file.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from .version import __version__
from .errors import LmgaugeError, PluginError
from .export import export_click_options
from .options import PluginCommand
from .subprocs import ignore_further_interrupts

OPTIONAL_COMMANDS = {"perf": "lmgauge.perf.cli", "report": "lmgauge.htmlreport.cli",
                     "compare": "lmgauge.eval.compare_cli", "regrade": "lmgauge.eval.regrade_cli",
                     "serve": "lmgauge.app.cli"}


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
        if isinstance(cmd, PluginCommand):
            from .plugins import get_manager

            pm = get_manager()
            cmd.attach(pm)
            pm.warn_broken(lambda line: click.echo(line, err=True))
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
    lmgauge compare paired significance of B - A for two eval runs of the same questions
    lmgauge regrade grade a finished eval run again (new graders, an LLM judge) without the model
    lmgauge serve   one live app for every run under a folder (lmgauge serve runs)
    """


# --------------------------------------------------------------------------------------
@cli.command("eval", cls=PluginCommand, context_settings={"show_default": False})
@click.option("--backend", default=None, help="Backend plugin name (default: the installed default, openai). See `lmgauge plugins`.")
@click.option("--base-url", "base_url", multiple=True,
              help="Server URL, e.g. http://127.0.0.1:8000/v1 (or the full /v1/chat/completions URL). Repeat for several endpoints.")
@click.option("--model", default=None, help="Model name as served (or a path/alias for in-process backends).")
@click.option("--api-key", default=None, help="API key (default: $LMGAUGE_API_KEY or $OPENAI_API_KEY). Never written anywhere.")
@click.option("--benchmark", "benchmark", multiple=True, metavar="NAME[=BASE[:PATH]]",
              help="Benchmark (repeatable): math_500, gpqa_diamond, aime24, aime25 … or ALIAS=BASE:PATH for a data file "
                   "under a name of its own, e.g. algebra=custom_math:algebra.jsonl.")
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
@click.option("--api", default=None, help="Endpoint kind the backend sends questions to, e.g. chat (its default) or "
                                         "completions (plain-text prompts); the backend refuses one it cannot use for eval.")
@click.option("--metric", "metric", multiple=True, help="Metric name (repeatable; default: AveragePass@1, pass@k, maj@k).")
@click.option("--output", default=None, type=click.Path(file_okay=False), help="Run folder (default: runs/eval-MODEL-TIME).")
@click.option("--resume", default=None, type=click.Path(file_okay=False), help="Continue the run in this folder: only missing samples are run.")
@click.option("--collection", default=None, type=click.Path(dir_okay=False), help="Collection file (YAML/JSON) mixing benchmarks into one eval.")
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="YAML file with any of these settings (flags override it).")
@click.option("--retries", type=int, default=None, help="Retries per request on 429/5xx/connection errors/timeouts. Default 5.")
@click.option("--max-connection-failures", type=click.IntRange(min=1), default=None,
              help="Stop the run after this many requests in a row reach no endpoint (default 4 × --concurrency, "
                   "at least 8); continue with --resume.")
@click.option("--timeout", type=float, default=None, help="Per-request read timeout in seconds. Default 3600.")
@click.option("--grading-workers", "grading_workers", type=int, default=None, help="Grading processes (default: CPU count, at most 4).")
@click.option("--sandbox", default=None, help="Sandbox plugin that runs model-written code (code benchmarks; default: the installed default, local).")
@click.option("--sandbox-require-isolation", "sandbox_require_isolation", is_flag=True, default=None,
              help="Refuse to run model code in a sandbox with weaker isolation (e.g. local without bubblewrap).")
@click.option("--progress/--no-progress", default=None, help="Show the progress line (default: on).")
@click.option("--tokenizer", default=None, metavar="SPEC",
              help="Tokenizer for the per-sample token counts: a tiktoken name, tokenizer folder, .gguf file or cached "
                   "hub id (default: the served model's own when it loads offline, else cl100k_base, marked approximate).")
@click.option("--sweep", "sweep", multiple=True, metavar="KEY=V1,V2,...",
              help="Run one eval per value of a generation setting (temperature, top_p, max_tokens, seed, or any request "
                   "field such as reasoning_effort) into --output/KEY=V/; repeat for a grid. Reports whether the setting "
                   "changed scores or lengths (docs/sweeps.md).")
@click.option("--starts-thinking", is_flag=True, default=None,
              help="The chat template opens <think> in the prompt (DeepSeek-R1 distills without a reasoning parser): "
                   "responses start inside thinking, and one cut off before </think> has no answer.")
@click.option("--judge-model", default=None, help="LLM judge: the judge's model name (turns the judge on; docs/judge.md).")
@click.option("--judge-backend", default=None, help="LLM judge: backend plugin serving the judge (default: the run's backend).")
@click.option("--judge-base-url", default=None, help="LLM judge: the judge server's URL (default: the run's --base-url).")
@click.option("--judge-api-key", default=None, help="LLM judge: API key (default $LMGAUGE_JUDGE_API_KEY; the run's key when the judge is the run's own "
                   "server, i.e. no --judge-base-url). Never written anywhere.")
@click.option("--judge-mode", type=click.Choice(["fallback", "always"]), default=None,
              help="fallback: judge only answers the rules could not decide (default); always: judge every answer.")
@click.option("--judge-concurrency", type=click.IntRange(min=1), default=None, help="LLM judge: requests in flight (default 16).")
@click.option("--replicas", type=click.IntRange(min=1), default=None,
              help="In-process backends: run N model replicas as Ray actors (needs lmgauge[ray]; docs/scale.md).")
@click.option("--gpus-per-replica", type=click.FloatRange(min=0), default=None, help="GPUs per replica (tensor parallel); default 1 where GPUs exist.")
@click.option("--ray-address", default=None, help="Ray cluster to join (default: start a local one).")
@export_click_options
def eval_command(**kwargs: Any) -> None:
    """Score a model on benchmarks through a backend.

    \b
    lmgauge eval --base-url http://127.0.0.1:8000/v1 --model M --benchmark math_500 --repeats 5
    lmgauge eval --base-url URL --model M --collection r1-math.yaml --max-tokens 32768
    lmgauge eval --resume runs/eval-M-20260101-120000
    lmgauge eval --base-url URL --model M --benchmark aime24 --sweep reasoning_effort=low,medium,high --output runs/effort
    """
    from .cli_common import parse_json_object, parse_kv
    from .eval.api import merge_settings
    from .eval.runner import print_report, run_eval
    from .options import pop_plugin_values
    from .plugins import get_manager

    plugin_values = pop_plugin_values(click.get_current_context(), kwargs)
    kwargs["dataset_path"] = parse_kv(kwargs.get("dataset_path"), "--dataset-path")
    kwargs["extra_body"] = parse_json_object(kwargs.get("extra_body"), "--extra-body")
    kwargs["benchmark"] = list(kwargs.get("benchmark") or ())
    kwargs["metric"] = list(kwargs.get("metric") or ())
    kwargs["base_url"] = list(kwargs.get("base_url") or ())
    kwargs["sweep"] = list(kwargs.get("sweep") or ())
    if kwargs.get("export"):
        kwargs["export"] = [x.strip() for x in kwargs["export"].split(",") if x.strip()]
    pm = get_manager()
    config = merge_settings(kwargs, pm, plugin_values)
    if config.sweep:
        _eval_sweep(config, pm, plugin_values)
        return
    try:
        report, out = run_eval(config, pm)
    except KeyboardInterrupt:
        out = config.resume or config.output
        click.echo(f"lmgauge: interrupted; finished samples are saved in {out}/samples.jsonl. "
                   f"Continue with: lmgauge eval --resume {out}", err=True)
        sys.exit(130)
    print_report(report, out)
    from .runsetup import check_eval_yield, finish_run

    finish_run(str(out), config.to_dict(secrets=True), plugin_values)
    check_eval_yield(report, out)


def _eval_sweep(config: Any, pm: Any, plugin_values: dict[str, Any]) -> None:
    """``lmgauge eval ... --sweep``: every variant (report.html and exports of each), then the
    sweep's table, its paired comparisons and the no-effect verdict; DIR/report.html."""
    from .eval.runner import run_sweep
    from .eval.sweep import sweep_text
    from .runsetup import check_eval_yield, finish_run

    def quiet(line: str, err: bool = False) -> None:  # a variant's own "html report: ..." is not news
        if err or not line.startswith("html report:"):
            click.echo(line, err=err)

    def finish(vdir: Any, vcfg: Any) -> None:
        finish_run(str(vdir), vcfg.to_dict(secrets=True), plugin_values, echo=quiet)

    try:
        outcome = run_sweep(config, pm, finish=finish, echo=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        out = config.resume or config.output
        click.echo(f"lmgauge: interrupted; finished samples are saved in the variants of {out}. "
                   f"Continue with the same command, or: lmgauge eval --resume {out}", err=True)
        sys.exit(130)
    click.echo(sweep_text(outcome.doc))
    for line in outcome.doc.get("warnings") or []:
        click.echo(f"lmgauge: warning: {line}", err=True)
    from .htmlreport import write_html_report

    try:
        click.echo(f"html report: {write_html_report([str(outcome.out)], str(outcome.out / 'report.html'))}")
    except LmgaugeError as exc:
        click.echo(f"lmgauge: warning: HTML report not written: {exc.line()}", err=True)
    click.echo(f"sweep folder: {outcome.out}")
    for _variant, vdir, report in outcome.variants:
        check_eval_yield(report, vdir)


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
def take_plugin_files(argv: list[str]) -> list[str]:
    """Remove every ``--plugin FILE`` (or ``--plugin=FILE``) from ``argv``; the files go into
    ``LMGAUGE_PLUGIN_FILES`` so that this process and its workers load them."""
    from .plugins import PLUGIN_FILES_ENV

    out, files, it = [], [], iter(argv)
    for a in it:
        if a == "--":
            out.append(a)
            out.extend(it)
            break
        if a == "--plugin":
            value = next(it, None)
            if value is None:
                raise click.UsageError("--plugin needs a FILE.py")
            files.append(value)
        elif a.startswith("--plugin="):
            files.append(a.split("=", 1)[1])
        else:
            out.append(a)
    for f in files:
        if not os.path.isfile(f):
            raise LmgaugeError(f"--plugin {f}: no such file", "give the path of a plugin .py file")
    if files:
        old = [x for x in os.environ.get(PLUGIN_FILES_ENV, "").split(os.pathsep) if x]
        os.environ[PLUGIN_FILES_ENV] = os.pathsep.join(old + [os.path.abspath(f) for f in files])
    return out


def main(argv: list[str] | None = None) -> None:
    debug = bool(os.environ.get("LMGAUGE_DEBUG"))
    try:
        args = take_plugin_files(list(sys.argv[1:] if argv is None else argv))
        cli.main(args=args, prog_name="lmgauge", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        ignore_further_interrupts()
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
        ignore_further_interrupts()
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
