"""``lmgauge perf``: load-test a server (or an in-process backend) over a sweep.

Flag names follow the issue contract; EvalScope's names are accepted as aliases
(``--parallel``, ``-n``, ``--tokenizer-path``, ``--api openai``, ``--name``,
``--log-every-n-query``, ``--outputs-dir``; plugins keep theirs, e.g. the random dataset's
``--min-prompt-length`` and the swanlab exporter's ``--swanlab-api-key``). List flags take
several values after one flag, as in EvalScope: ``--concurrency 1 10 50 --number 10 100 500``.

The settings are one :class:`lmgauge.perf.config.PerfConfig`; the core holds no plugin's name
or flag: the backend interprets ``--url``, the dataset owns its flags.

Everything that can be wrong with the input (flags, tokenizer, dataset file, server reachable,
model served) is checked before the run folder is created, and reported in one line.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import click

if TYPE_CHECKING:  # imported where used: `lmgauge --help` lists this command without building it
    from .config import PerfConfig

from ..errors import ConfigError
from ..export import export_click_options
from ..interfaces import Backend, RequestSettings
from ..options import COMMAND_FAMILIES, PluginCommand, values_for
from ..redaction import redact

LIST_FLAGS = {"--concurrency", "--parallel", "--number", "-n", "--rate"}
NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")
UNBOUNDED = 10**12  # requests of a level bounded by --duration only


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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.rstrip("/").rsplit("/", 1)[-1])[:60] or "model"


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
    out, interrupted = run_perf(config, pm)
    from ..cli import finish_run

    finish_run(str(out), config.to_dict(secrets=True), plugin_values)
    if interrupted:
        click.echo(f"lmgauge: interrupted; what was measured is saved in {out}", err=True)
        sys.exit(130)


def perf_settings(explicit: dict[str, Any], pm: Any, plugin_values: dict[str, Any] | None = None) -> PerfConfig:
    """defaults < ``--config FILE.yaml`` < flags; plugin options checked by their click types."""
    from ..config import load_yaml, resolve_api_key
    from ..eval.api import default_plugin

    explicit = {k: v for k, v in explicit.items() if v is not None and v != () and v != [] and v != {}}
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    config_file = explicit.pop("config", None)
    if config_file:
        settings, options = pm.options.split(load_yaml(config_file), COMMAND_FAMILIES["perf"], f"config file {config_file}")
    settings.update(explicit)
    options.update(plugin_values or {})
    settings["options"] = options
    settings["api_key"] = resolve_api_key(settings.get("api_key"))
    if not settings.get("backend"):
        settings["backend"] = default_plugin(pm, "backends", "--backend")
    if not settings.get("dataset") and settings.get("prompt") is None:
        settings["dataset"] = default_plugin(pm, "datasets", "--dataset")
    from .config import PerfConfig

    return PerfConfig.from_dict(settings, source=config_file or "settings")


# -- settings --------------------------------------------------------------------------
@dataclass
class Level:
    concurrency: int | None
    rate: float | None
    count: int
    ramp: Any = None     # lmgauge.perf.loadgen.Ramp: the rate moves over the level
    timed: bool = False  # trace replay: requests go out at their own offsets

    @property
    def label(self) -> str:
        if self.timed:
            return "trace replay"
        if self.ramp is not None:
            return f"ramp {self.ramp.start:g}→{self.ramp.end:g} req/s"
        return f"rate {self.rate:g}" if self.rate is not None else f"concurrency {self.concurrency}"


def server_metrics_target(c: PerfConfig, bconf: Any) -> tuple[str, dict[str, str]]:
    """(the /metrics URL, the headers it may get) of ``--server-metrics [URL]``: the run's
    Authorization and extra headers go only to the endpoint's own host and port."""
    from .server_metrics import metrics_url, scrape_headers

    url = metrics_url(c.url, c.server_metrics or None)
    headers = {k.strip(): v.strip() for k, _, v in (str(h).partition("=") for h in bconf.options.get("headers") or ())}
    if bconf.api_key:
        headers["Authorization"] = f"Bearer {bconf.api_key}"
    return url, scrape_headers(url, c.url, headers)


def sla_search(c: PerfConfig):
    """The SLA search of ``--sla-search`` (None without it)."""
    if not (c.sla_search or c.sla_auto_tune):
        if c.sla or c.sla_params:
            raise ConfigError("--sla sets the objectives of --sla-search", "add --sla-search concurrency (or rate)")
        return None
    from .sla import SLASearch, parse_objectives, parse_range

    dimension = {"parallel": "concurrency", None: "concurrency"}.get(c.sla_search, c.sla_search)
    objectives = parse_objectives(c.sla, c.sla_params)
    if not objectives:
        raise ConfigError("--sla-search needs objectives", "e.g. --sla 'ttft_p99<=500ms,tpot_p90<=50ms'")
    if c.rate or c.ramp_up or (dimension == "concurrency" and c.concurrency):
        raise ConfigError(f"--sla-search {dimension} chooses the {dimension} levels itself",
                          "drop --concurrency/--rate/--ramp-up (with --sla-search rate, one --concurrency caps requests in flight)")
    if dimension == "rate" and len(c.concurrency) > 1:
        raise ConfigError("--sla-search rate takes at most one --concurrency (the cap on requests in flight)")
    if len(c.number) > 1:
        raise ConfigError("--sla-search takes one --number (requests per probe)")
    low, high = parse_range(c.sla_range, dimension, c.sla_lower_bound, c.sla_upper_bound)
    return SLASearch(objectives, dimension, low, high, c.sla_precision or 0.05)


def plan_levels(c: PerfConfig, timed: bool = False) -> list[Level]:
    """The levels of the sweep. ``timed``: the dataset replays its own send times (one level,
    every request of the trace unless --number/--duration cut it; --concurrency caps requests
    in flight). A --ramp-up is one level too."""
    conc, number, rates = list(c.concurrency), list(c.number), list(c.rate)
    if timed or c.ramp_up:
        from .loadgen import Ramp

        what = "a trace replay (its requests carry their own send times)" if timed else "--ramp-up"
        if rates:
            raise ConfigError(f"--rate cannot be used with {what}", "drop --rate")
        if len(conc) > 1 or len(number) > 1:
            raise ConfigError(f"{what} is one level: give at most one --concurrency (the cap on requests in flight) "
                              "and one --number")
        if timed and c.ramp_up:
            raise ConfigError("--ramp-up cannot be used with a trace replay (the trace sets the send times)")
        n = number[0] if number else (100 if c.ramp_up and not c.duration else UNBOUNDED)
        ramp = None
        if c.ramp_up:
            a, b = float(c.ramp_up_start_rps), float(c.ramp_up_end_rps)
            ramp = Ramp(c.ramp_up, a, b, c.duration) if c.duration else Ramp.for_count(c.ramp_up, a, b, n)
        return [Level(conc[0] if conc else None, None, n, ramp=ramp, timed=timed)]
    if rates and len(conc) > 1:
        raise ConfigError(f"--rate takes at most one --concurrency value (the cap on requests in flight), got {len(conc)}",
                          "sweep either --concurrency or --rate")
    levels = rates or conc or [1]
    if number and len(number) not in (1, len(levels)):
        what = "--rate" if rates else "--concurrency"
        raise ConfigError(f"--number has {len(number)} values for {len(levels)} {what} levels",
                          f"give one --number, or one per {what} value")
    plan = []
    for i, lv in enumerate(levels):
        if number:
            n = number[i] if len(number) > 1 else number[0]
        elif c.duration:
            n = UNBOUNDED
        else:
            n = 100 if rates else max(10, 4 * int(lv))
        if rates:
            plan.append(Level(conc[0] if conc else None, float(lv), n))
        else:
            plan.append(Level(int(lv), None, n))
    return plan


@dataclass
class RequestSource:
    """Where a level's requests come from (picklable: worker processes rebuild the same
    seeded requests from it): the dataset plugin's name and its option values, or one fixed
    prompt, with the run's request settings."""

    dataset: str | None
    prompt: str | None
    options: dict[str, Any] = field(default_factory=dict)
    settings: RequestSettings = field(default_factory=RequestSettings)

    def requests(self, tok, count: int, seed_offset: int = 0) -> Iterator[Any]:
        from dataclasses import replace

        from .requests import make_request

        settings = replace(self.settings, seed=self.settings.seed + seed_offset)
        if self.prompt is not None:
            return (make_request(self.prompt, settings, i) for i in range(count))
        return self.make(tok, settings).requests(count)

    def make(self, tok, settings: RequestSettings | None = None):
        from ..plugins import get_manager

        return get_manager().get("datasets", self.dataset)(dict(self.options), settings or self.settings, tok)


# -- the run ---------------------------------------------------------------------------
def run_perf(c: PerfConfig, pm: Any) -> tuple[Path, bool]:
    """Check everything, run every level, write the run folder. Returns (folder, interrupted)."""
    from ..interfaces import BackendConfig
    from ..tokenizers import load_tokenizer
    from .metrics import parse_slo

    backend_cls = pm.get("backends", c.backend)
    dataset_cls = pm.get("datasets", c.dataset) if c.prompt is None else None
    levels = plan_levels(c, timed=bool(dataset_cls.timed if dataset_cls is not None else False))
    search = sla_search(c)
    slo = parse_slo(c.slo)
    if c.workers > 1 and getattr(backend_cls, "process_local", False):
        raise ConfigError(f"--workers {c.workers} cannot be used with the {c.backend} backend (it holds the model in-process)",
                          "use --workers 1")
    if c.ray and c.workers < 2:
        raise ConfigError("--ray runs the --workers shards as Ray actors", "pass --workers N (N ≥ 2) with --ray")
    if c.ray:
        from ..scale import import_ray

        import_ray()  # missing Ray is one line, before the run folder exists
    bconf = BackendConfig(model=c.model, base_url=c.url, endpoints=c.urls or ([c.url] if c.url else []), api_key=c.api_key,
                          api=c.api, connect_timeout=c.connect_timeout, read_timeout=c.read_timeout,
                          options=values_for(backend_cls, c.options))
    scrape = server_metrics_target(c, bconf) if c.server_metrics is not None else None
    tok = load_tokenizer(c.tokenizer) if c.tokenizer else None
    tok_spec = c.tokenizer
    if c.replicas > 1:
        from ..scale import replica_backend

        backend = replica_backend(c.backend, bconf, c.replicas, c.gpus_per_replica, c.ray_address)
    else:
        backend = backend_cls(bconf)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(backend.start())
        if tok is None:
            tok = backend.own_tokenizer()  # an in-process backend's own tokenizer
        default_tok = tok is None and dataset_cls is not None and dataset_cls.needs_tokenizer
        if default_tok:
            tok_spec = "cl100k_base"
            tok = load_tokenizer(tok_spec)
        backend.use_tokenizer(tok)
        settings = RequestSettings(model=c.model, api=backend.api, max_tokens=c.max_tokens, min_tokens=c.min_tokens,
                                   temperature=c.temperature, extra_args=dict(c.extra_args), stream=c.stream,
                                   seed=c.seed, dataset_path=c.dataset_path)
        source = RequestSource(c.dataset if c.prompt is None else None, c.prompt,
                               values_for(dataset_cls, c.options) if dataset_cls is not None else {}, settings)
        if c.prompt is None:
            source.make(tok).check()  # dataset problems show up now, in one line
        check_first_request(backend, source, tok)
        if default_tok:
            click.echo(f"note: --dataset {c.dataset} without --tokenizer: token lengths are counted in cl100k_base tokens",
                       err=True)
        out = Path(c.output or Path("runs") / f"perf-{_slug(c.model)}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run folder {out}: {exc.strerror or exc}", "pass another --output") from None
        import yaml

        saved = c.to_dict()
        saved["api"] = backend.api
        saved = redact({**saved, **values_for(backend_cls, c.options), **source.options})
        (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, allow_unicode=True), encoding="utf-8")
        run = PerfRun(c, loop, backend, backend_cls, bconf, tok, tok_spec, levels, slo, out, saved, source, search, scrape)
        return out, run.sweep()
    finally:
        try:
            loop.run_until_complete(backend.close())
        finally:
            loop.close()
            asyncio.set_event_loop(None)


def check_first_request(backend: Backend, source: RequestSource, tok: Any) -> None:
    """A request the backend's endpoint cannot send (prompts to a rerank endpoint, images to
    completions) is one line now, not a failure per request (``Backend.check_request``)."""
    from ..types import Session

    first = next(iter(source.requests(tok, 1)), None)
    if isinstance(first, Session):
        first = first.turns[0] if first.turns else None
    if first is not None:
        backend.check_request(first)


@dataclass
class PerfRun:
    """One perf run: the sweep over its levels, with everything the levels share."""

    c: PerfConfig
    loop: asyncio.AbstractEventLoop
    backend: Backend
    backend_cls: type
    bconf: Any
    tok: Any
    tok_spec: str | None
    levels: list[Level]
    slo: dict[str, float]
    out: Path
    saved: dict[str, Any]
    source: RequestSource
    search: Any = None  # lmgauge.perf.sla.SLASearch with --sla-search
    scrape: tuple[str, dict[str, str]] | None = None  # --server-metrics: (URL, headers)

    def sweep(self) -> bool:
        """Run every level (or the SLA search's probes); write perf.sqlite and summary.json
        after each. Returns whether the run was interrupted."""
        from .output import PerfStore, summary_table

        c, tok = self.c, self.tok
        self.summary: dict[str, Any] = {
            "kind": "perf", "model": c.model, "url": c.url, **({"urls": c.urls} if c.urls else {}),
            "backend": c.backend, "name": c.name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "config": self.saved,
            "load_time_s": self.backend.load_time_s, "tokenizer": tok.name if tok is not None else None,
            "api": self.backend.api, "runs": []}
        self.store = PerfStore(self.out / "perf.sqlite")
        if self.scrape is not None:
            from .server_metrics import create_tables

            create_tables(self.store.db)
        interrupted = False
        try:
            if self.search is not None:
                interrupted = self.sla_sweep()
            else:
                for run_id, lv in enumerate(self.levels, 1):
                    if self.run_level(run_id, lv):
                        interrupted = True
                        break
        finally:
            self.store.close()
        if self.summary["runs"]:
            click.echo(summary_table(self.summary))
        if self.search is not None:
            click.echo(self.search.answer())
        click.echo(f"run folder: {self.out}")
        return interrupted

    def sla_sweep(self) -> bool:
        """Probe the loads the SLA search asks for, one level each."""
        from .output import write_summary

        search = self.search
        count = self.levels[0].count if self.c.number else None
        for run_id, load in enumerate(search.loads(), 1):
            n = count or (max(20, 4 * int(load)) if search.dimension == "concurrency" else max(20, math.ceil(10 * load)))
            lv = (Level(int(load), None, n) if search.dimension == "concurrency"
                  else Level(self.c.concurrency[0] if self.c.concurrency else None, load, n))
            interrupted = self.run_level(run_id, lv)
            run = self.summary["runs"][-1]
            probe = search.record(load, run)
            run["sla"] = {"met": probe.met, "failed": probe.failed, "values": probe.values}
            self.summary["sla_search"] = search.summary()
            write_summary(self.out / "summary.json", self.summary)
            click.echo(f"SLA probe {search.label(load)}: {'met' if probe.met else 'missed ' + ', '.join(probe.failed)}")
            if interrupted:
                return True
        self.summary["sla_search"] = search.summary()
        write_summary(self.out / "summary.json", self.summary)
        return False

    def run_level(self, run_id: int, lv: Level) -> bool:
        """One level: warm-up, the load, metrics, perf.sqlite and summary.json. Returns whether
        it was interrupted."""
        from .loadgen import Load, count_prompt_tokens, prebuilt, run_in_loop, run_load, schedule
        from .metrics import aggregate, request_metrics
        from .output import best_and_advice, percentile_table, write_summary

        c, tok = self.c, self.tok
        count = tok.count if tok is not None else None
        load = Load(count=lv.count, concurrency=lv.concurrency, rate=lv.rate, burstiness=c.burstiness,
                    duration=c.duration, seed=c.seed, ramp=lv.ramp, timed=lv.timed)
        if c.warmup:
            wl = Load(count=c.warmup, concurrency=lv.concurrency or min(c.warmup, 8))
            witems = list(schedule(wl, self.source.requests(tok, c.warmup, seed_offset=1)))
            warm = run_in_loop(self.loop, lambda res: run_load(self.backend, witems, wl, res))
            if warm.interrupted:
                return True
        progress = _Progress(lv.count, c.log_every, lv)
        scraper = scraped = None
        if self.scrape is not None:
            from .server_metrics import ServerMetricsScraper

            scraper = ServerMetricsScraper(self.scrape[0], headers=self.scrape[1])
            # shards leave this process's loop idle: the scraper then runs in a thread of its own
            scraper.start_thread() if c.workers > 1 else self.loop.run_until_complete(scraper.start())
        try:
            if c.workers > 1:
                result = self.run_shards(load)
            else:
                items = prebuilt(schedule(load, self.source.requests(tok, lv.count)),
                                 1000 if lv.count == UNBOUNDED else 20_000)
                result = run_in_loop(self.loop, lambda res: run_load(self.backend, items, load, res, on_done=progress.done))
                count_prompt_tokens(result.records, count)
        finally:
            if scraper is not None:
                scraped = scraper.stop_thread() if c.workers > 1 else self.loop.run_until_complete(scraper.stop())
        records = sorted(result.records, key=lambda r: r.index)
        metrics = [request_metrics(r, count) for r in records]
        run = aggregate(records, metrics, wall_s=result.wall_s, concurrency=lv.concurrency, rate=lv.rate,
                        slo=self.slo, cpu_s=result.cpu_s)
        run["workers"] = c.workers
        run["api"] = self.backend.api  # the endpoint kind: the tables show what makes sense for it
        self.add_workload_figures(run, lv, records, metrics, result.started)
        run["clock_origin"] = result.started  # perf_counter() at the level's start: sqlite *_s columns count from it
        run["tokenizer"] = self.summary["tokenizer"]
        if getattr(result, "nodes", None):
            run["nodes"] = result.nodes
        if result.interrupted:
            run["interrupted"] = True
            run["abandoned_in_flight"] = result.abandoned
        if scraped is not None:
            from .server_metrics import store as store_series
            from .server_metrics import summary as series_summary

            run["server_metrics"] = series_summary(scraped)
            store_series(self.store.db, run_id, scraped, result.started)
            if run["server_metrics"].get("warning"):
                click.echo(f"lmgauge: warning: {run['server_metrics']['warning']}", err=True)
        self.summary["runs"].append(run)
        self.store.add_run(run_id, run, records, metrics, result.started)
        in_process = bool(getattr(self.backend_cls, "process_local", False))
        best, advice = best_and_advice(self.summary["runs"], in_process=in_process)
        self.summary["best"], self.summary["recommendations"] = best, advice
        write_summary(self.out / "summary.json", self.summary)
        click.echo(percentile_table(run))
        if result.nodes:
            from ..scale.ray_perf import describe_nodes

            for line in describe_nodes(result.nodes):
                click.echo(line)
        return result.interrupted

    def add_workload_figures(self, run: dict[str, Any], lv: Level, records: list, metrics: list[dict[str, Any]],
                             origin: float) -> None:
        """Per-turn and per-session figures of a multi-turn level; the ramp or trace that paced
        a level, with offered vs achieved rate per second."""
        from .metrics import per_endpoint, per_session, per_turn, timeline

        if self.c.urls:
            run["endpoints"] = per_endpoint(records, metrics, wall_s=run["duration_s"], slo=self.slo)
        sessions = per_session(records)
        if sessions is not None:
            run["sessions"] = sessions
            run["turns"] = per_turn(records, metrics, slo=self.slo)
        if lv.ramp is not None:
            r = lv.ramp
            run["ramp"] = {"kind": r.kind, "start_rps": r.start, "end_rps": r.end, "span_s": r.span}
        if lv.timed:
            run["trace"] = {"dataset": self.c.dataset, "path": self.c.dataset_path}
        if lv.ramp is not None or lv.timed:
            run["label"] = lv.label
            sched = sorted(r.scheduled for r in records if r.scheduled)
            if len(sched) > 1 and sched[-1] > sched[0]:
                run["scheduled_rate"] = (len(sched) - 1) / (sched[-1] - sched[0])
            run["timeline"] = timeline(records, metrics, origin)

    def run_shards(self, load):
        """The level split over ``--workers`` processes, or Ray actors with ``--ray``."""
        c = self.c
        if c.ray:
            from ..scale import ray_perf_workers

            return ray_perf_workers(c.workers, c.backend, self.bconf, self.tok_spec, self.source, load, c.ray_address)
        from .loadgen import run_workers

        return run_workers(c.workers, c.backend, self.bconf, self.tok_spec, self.source, load)


class _Progress:
    def __init__(self, total: int, every: int | None, lv: Level):
        self.total = "?" if total >= UNBOUNDED else str(total)
        self.every, self.n = every, 0
        self.label = lv.label
        self.last = time.monotonic()
        self.failed = 0
        self.sessions = 0  # sessions ended (multi-turn: the total counts sessions, n counts turns)

    def done(self, rec) -> None:
        self.n += 1
        self.failed += 0 if rec.success else 1
        if rec.session is not None and (not rec.success or rec.turn == rec.turns):
            self.sessions += 1
        if self.every:
            if self.n % self.every:
                return
        else:
            now = time.monotonic()
            if now - self.last < 5.0:
                return
            self.last = now
        if self.sessions or rec.session is not None:
            click.echo(f"perf {self.label}: {self.sessions}/{self.total} sessions done ({self.n} turns, "
                       f"{self.failed} failed)", err=True)
            return
        click.echo(f"perf {self.label}: {self.n}/{self.total} requests done, {self.failed} failed", err=True)
