"""``lmgauge perf``: the command and its flags (the run itself: lmgauge.perf.run).

Flag names follow the issue contract; EvalScope's names are accepted as aliases
(``--parallel``, ``-n``, ``--tokenizer-path``, ``--api openai``, ``--name``,
``--log-every-n-query``, ``--outputs-dir``; plugins keep theirs, e.g. the random dataset's
``--min-prompt-length`` and the swanlab exporter's ``--swanlab-api-key``). List flags take
several values after one flag, as in EvalScope: ``--concurrency 1 10 50 --number 10 100 500``.

The settings are one :class:`lmgauge.perf.config.PerfConfig`; the core holds no plugin's name
or flag: the backend interprets ``--url``, the dataset owns its flags.

"""
from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported where used: `lmgauge --help` lists this command without building it
    from .config import PerfConfig

from ..export import export_click_options
from ..options import PluginCommand

LIST_FLAGS = {"--concurrency", "--parallel", "--number", "-n", "--rate"}
NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")


class ListFlagsCommand(PluginCommand):
    """Lets ``--concurrency 1 10 50`` mean ``--concurrency 1 --concurrency 10 --concurrency 50``
    (numbers following a list flag belong to it)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        flag: str | None = None
        expect_value = False
        for a in args:
            if a == "--":
                flag = None
                out.append(a)
                continue
            if a in LIST_FLAGS:
                flag, expect_value = a, True
                out.append(a)
                continue
            if flag is not None and NUMBER.fullmatch(a):
                if expect_value:
                    out.append(a)
                    expect_value = False
                else:
                    out += [flag, a]
                continue
            if flag is not None and expect_value:  # a list flag's first value that is not a number
                out.append(a)                      # (click reports it)
                flag, expect_value = None, False
                continue
            flag = None
            out.append(a)
        return super().parse_args(ctx, out)


@click.command("perf", cls=ListFlagsCommand, context_settings={"show_default": False})
@click.option("--url", multiple=True, help="Endpoint, e.g. http://HOST:PORT/v1/chat/completions, /v1/completions, /v1/embeddings, "
                                           "/v1/rerank, /v1/score or /v1/responses (the backend reads it). Repeat for several "
                                           "servers: request i goes to URL i mod N.")
@click.option("--model", default=None, help="Model name as served (or a path/alias for in-process backends, e.g. smollm2).")
@click.option("--api-key", default=None, help="API key (default: $LMGAUGE_API_KEY or $OPENAI_API_KEY). Never written anywhere.")
@click.option("--backend", default=None, help="Backend plugin (default: the installed default, openai; transformers runs the model in-process).")
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="YAML file with any of these settings (flags override it).")
@click.option("--concurrency", "--parallel", "concurrency", type=click.IntRange(min=1), multiple=True,
              help="Closed-loop concurrency levels, several values after one flag: 1 10 50 100.")
@click.option("--number", "-n", "number", type=click.IntRange(min=1), multiple=True,
              help="Requests per level: one value for all levels, or one per level.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), multiple=True,
              help="Open-loop request rates in req/s (Poisson arrivals), e.g. 2 4 8.")
@click.option("--burstiness", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Gamma shape of --rate arrivals: 1 Poisson (default), <1 burstier, >1 more regular.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop scheduling new requests after S seconds per level.")
@click.option("--ramp-up", type=click.Choice(["linear", "exponential"]), default=None,
              help="One open-loop level whose rate moves from --ramp-up-start-rps to --ramp-up-end-rps "
                   "(over --duration, or the time --number requests take).")
@click.option("--ramp-up-start-rps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Request rate at the start of the ramp (req/s).")
@click.option("--ramp-up-end-rps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Request rate at the end of the ramp (req/s).")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="Unmeasured requests sent before each level.")
@click.option("--stream/--no-stream", default=None, help="Streaming requests (default) or one JSON response per request.")
@click.option("--dataset", default=None, help="Prompt source plugin: openqa (default), random, line_by_line, custom … (see `lmgauge plugins`).")
@click.option("--dataset-path", default=None, help="File for the dataset (e.g. line_by_line: text; custom: JSONL; openqa: HC3 open_qa.jsonl).")
@click.option("--prompt", default=None, help="Send this one prompt for every request (instead of --dataset).")
@click.option("--tokenizer", "--tokenizer-path", "tokenizer", default=None,
              help="cl100k_base (bundled), a tokenizer folder, a .gguf file or a cached hub id.")
@click.option("--min-tokens", type=click.IntRange(min=0), default=None, help="Minimum output tokens (sends min_tokens and ignore_eos, as vLLM expects).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Maximum output tokens per request.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default: server's).")
@click.option("--extra-args", default=None, metavar="JSON", help="Extra JSON fields for every request body, e.g. '{\"ignore_eos\": true}'.")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Seconds to connect (default 30).")
@click.option("--read-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds without data before a request fails (default 600).")
@click.option("--slo", default=None, help="Service levels for goodput, e.g. ttft=500ms,tpot=50ms,latency=10s.")
@click.option("--server-metrics", "server_metrics", is_flag=False, flag_value="", default=None, metavar="[URL]",
              help="Scrape the server's Prometheus metrics every second during each level (default URL: /metrics on "
                   "--url's host): queue, KV cache, prefix-cache hits, preemptions beside the client's figures.")
@click.option("--sla", default=None, metavar="OBJECTIVES",
              help="Objectives for --sla-search, e.g. 'ttft_p99<=500ms,tpot_p90<=50ms' (metric_stat op value).")
@click.option("--sla-search", "--sla-variable", "sla_search", type=click.Choice(["concurrency", "rate", "parallel"]),
              default=None, help="Find the highest concurrency (or request rate) that meets --sla, by bracketing and "
                                 "bisection; every probe is a level of the run (EvalScope: --sla-variable parallel|rate).")
@click.option("--sla-range", default=None, metavar="LOW:HIGH", help="Search range (default 1:1024 concurrency, 0.5:512 req/s).")
@click.option("--sla-lower-bound", type=click.FloatRange(min=0, min_open=True), default=None, hidden=True,
              help="EvalScope compatibility: LOW of --sla-range.")
@click.option("--sla-upper-bound", type=click.FloatRange(min=0, min_open=True), default=None, hidden=True,
              help="EvalScope compatibility: HIGH of --sla-range.")
@click.option("--sla-precision", type=click.FloatRange(min=0.001, max=0.5), default=None,
              help="Stop when the met and missed loads are this close, relatively (default 0.05).")
@click.option("--sla-params", default=None, metavar="JSON", hidden=True,
              help="EvalScope compatibility: objectives as [{\"p99_ttft\": \"<=500ms\"}].")
@click.option("--sla-auto-tune", "sla_auto_tune", is_flag=True, default=None, hidden=True,
              help="EvalScope compatibility: search (on --sla-variable, default parallel).")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Run each level K times with fresh connections: summary.json gets each trial's figures and 95% "
                   "confidence intervals (t-interval over trials; with 1, a bootstrap over requests).")
@click.option("--reset-cache", "reset_cache", is_flag=True, default=None,
              help="Reset the server's prefix cache before each trial (vLLM POST /reset_prefix_cache, served with "
                   "VLLM_SERVER_DEV_MODE=1; SGLang POST /flush_cache).")
@click.option("--stop-on-saturation", "stop_on_saturation", is_flag=True, default=None,
              help="Stop a level once requests in the system and TTFT keep growing (the server cannot keep up), and "
                   "do not climb to higher loads; a sweep also stops past its knee.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Client processes (for loads one process cannot drive).")
@click.option("--ray", is_flag=True, default=None, help="Run the --workers shards as Ray actors across a cluster's nodes (docs/scale.md).")
@click.option("--ray-address", default=None, help="Ray cluster to join with --ray or --replicas (default: a local one).")
@click.option("--replicas", type=click.IntRange(min=1), default=None,
              help="In-process backends: N model replicas as Ray actors, requests to the least busy (docs/scale.md).")
@click.option("--gpus-per-replica", type=click.FloatRange(min=0), default=None, help="GPUs per replica (default 1 where GPUs exist).")
@click.option("--seed", type=int, default=None, help="Seed for prompts and arrival times (default 0).")
@click.option("--output", "--outputs-dir", "output", default=None, type=click.Path(file_okay=False),
              help="Run folder (default runs/perf-MODEL-TIME).")
@click.option("--api", default=None, help="Endpoint kind: chat, completions, embeddings, rerank, score or responses (default: "
                                         "from --url); EvalScope's openai, embedding, rerank, openai_responses are accepted.")
@click.option("--name", default=None, help="A label for this run (shown in reports).")
@click.option("--log-every-n-query", "log_every", type=click.IntRange(min=1), default=None,
              help="Print progress every N finished requests (default: every 5 s).")
@export_click_options
def perf(**kw: Any) -> None:
    """Load-test an OpenAI-compatible server: TTFT, ITL, TPOT, latency, throughput.

    \b
    lmgauge perf --url http://127.0.0.1:8000/v1/chat/completions --model M \\
        --concurrency 1 10 50 --number 10 100 500 --dataset random --tokenizer cl100k_base \\
        --min-prompt-length 1024 --max-prompt-length 1024 --max-tokens 256 --min-tokens 256
    lmgauge perf --url URL --model M --rate 2 4 8 --number 200 --slo ttft=500ms,tpot=50ms
    lmgauge perf --backend transformers --model smollm2 --number 8 --concurrency 1 2
    """
    from ..cli_common import parse_json_object
    from ..options import pop_plugin_values
    from ..plugins import get_manager

    plugin_values = pop_plugin_values(click.get_current_context(), kw)
    kw["extra_args"] = parse_json_object(kw.get("extra_args"), "--extra-args")
    for key in ("concurrency", "number", "rate"):
        kw[key] = list(kw.get(key) or ())
    kw["url"] = list(kw.get("url") or ())
    pm = get_manager()
    config = perf_settings(kw, pm, plugin_values)
    from ..runfolder import load_run
    from ..runsetup import check_perf_yield, finish_run
    from .run import run_perf

    out, interrupted = run_perf(config, pm)
    finish_run(str(out), config.to_dict(secrets=True), plugin_values)
    if interrupted:
        click.echo(f"lmgauge: interrupted; what was measured is saved in {out}", err=True)
        sys.exit(130)
    check_perf_yield(load_run(out).summary, out)


def perf_settings(explicit: dict[str, Any], pm: Any, plugin_values: dict[str, Any] | None = None) -> PerfConfig:
    """defaults < ``--config FILE.yaml`` < flags; plugin options checked by their click types."""
    from ..runsetup import merge_settings
    from .config import PerfConfig

    return merge_settings(PerfConfig, explicit, pm, plugin_values)
