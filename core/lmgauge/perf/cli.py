"""``lmgauge perf``: load-test a server (or an in-process backend) over a sweep.

Flag names follow the issue contract; EvalScope's names are accepted as aliases
(``--parallel``, ``-n``, ``--tokenizer-path``, ``--api openai``, ``--name``,
``--log-every-n-query``, ``--outputs-dir``, ``--swanlab-api-key``). List flags take several
values after one flag, as in EvalScope: ``--concurrency 1 10 50 --number 10 100 500``.

Everything that can be wrong with the input (flags, tokenizer, dataset file, server reachable,
model served) is checked before the run folder is created, and reported in one line.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import click

from ..errors import ConfigError
from ..export import export_click_options

LIST_FLAGS = {"--concurrency", "--parallel", "--number", "-n", "--rate"}
NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")
UNBOUNDED = 10**12  # requests of a level bounded by --duration only


class ListFlagsCommand(click.Command):
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
@click.option("--url", default=None, help="Endpoint: http://HOST:PORT/v1/chat/completions or /v1/completions (openai backend).")
@click.option("--model", default=None, help="Model name as served (or a path/alias for in-process backends, e.g. smollm2).")
@click.option("--api-key", default=None, help="API key (default: $LMGAUGE_API_KEY or $OPENAI_API_KEY). Never written anywhere.")
@click.option("--backend", default="openai", help="Backend plugin (default openai; transformers runs the model in-process).")
@click.option("--concurrency", "--parallel", "concurrency", type=click.IntRange(min=1), multiple=True,
              help="Closed-loop concurrency levels, several values after one flag: 1 10 50 100.")
@click.option("--number", "-n", "number", type=click.IntRange(min=1), multiple=True,
              help="Requests per level: one value for all levels, or one per level.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), multiple=True,
              help="Open-loop request rates in req/s (Poisson arrivals), e.g. 2 4 8.")
@click.option("--burstiness", type=click.FloatRange(min=0, min_open=True), default=1.0,
              help="Gamma shape of --rate arrivals: 1 Poisson, <1 burstier, >1 more regular.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop scheduling new requests after S seconds per level.")
@click.option("--warmup", type=click.IntRange(min=0), default=0, help="Unmeasured requests sent before each level.")
@click.option("--stream/--no-stream", default=True, help="Streaming requests (default) or one JSON response per request.")
@click.option("--dataset", default="openqa", help="Prompt source: openqa (default), random, line_by_line, custom (see `lmgauge plugins`).")
@click.option("--dataset-path", default=None, help="File for the dataset (line_by_line: text; custom: JSONL; openqa: HC3 open_qa.jsonl or 'hc3').")
@click.option("--prompt", default=None, help="Send this one prompt for every request (instead of --dataset).")
@click.option("--tokenizer", "--tokenizer-path", "tokenizer", default=None,
              help="cl100k_base (bundled), a tokenizer folder, a .gguf file or a cached hub id.")
@click.option("--min-prompt-length", type=click.IntRange(min=1), default=None, help="random: minimum prompt tokens.")
@click.option("--max-prompt-length", type=click.IntRange(min=1), default=None, help="random: maximum prompt tokens.")
@click.option("--prefix-length", type=click.IntRange(min=0), default=0, help="random: tokens of a prefix shared by all prompts.")
@click.option("--min-tokens", type=click.IntRange(min=0), default=None, help="Minimum output tokens (sends min_tokens and ignore_eos, as vLLM expects).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Maximum output tokens per request.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default: server's).")
@click.option("--extra-args", default=None, metavar="JSON", help="Extra JSON fields for every request body, e.g. '{\"ignore_eos\": true}'.")
@click.option("--headers", "--header", "headers", multiple=True, metavar="K=V", help="Extra HTTP header (repeatable).")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, help="Seconds to connect (default 30).")
@click.option("--read-timeout", type=click.FloatRange(min=0, min_open=True), default=600.0,
              help="Seconds without data before a request fails (default 600).")
@click.option("--slo", default=None, help="Service levels for goodput, e.g. ttft=500ms,tpot=50ms,latency=10s.")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="Client processes (for loads one process cannot drive).")
@click.option("--seed", type=int, default=0, help="Seed for prompts and arrival times.")
@click.option("--output", "--outputs-dir", "output", default=None, type=click.Path(file_okay=False),
              help="Run folder (default runs/perf-MODEL-TIME).")
@click.option("--api", default=None, help="chat or completions (default: from --url); EvalScope's 'openai' is accepted.")
@click.option("--name", default=None, help="A label for this run (shown in reports).")
@click.option("--log-every-n-query", "log_every", type=click.IntRange(min=1), default=None,
              help="Print progress every N finished requests (default: every 5 s).")
@click.option("--swanlab-api-key", "swanlab_api_key", default=None, hidden=True,
              help="EvalScope compatibility: sets SWANLAB_API_KEY and adds the swanlab exporter.")
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
    from ..cli_common import parse_json_object, parse_kv, pop_backend_options

    ctx = click.get_current_context()
    kw["backend_options"] = pop_backend_options(ctx.command, kw)
    kw["extra_args"] = parse_json_object(kw.get("extra_args"), "--extra-args") or {}
    kw["headers"] = parse_kv(kw.get("headers"), "--headers")
    key = kw.pop("swanlab_api_key", None)
    if key:
        os.environ["SWANLAB_API_KEY"] = key
        names = [x for x in (kw.get("export") or "").split(",") if x.strip()]
        kw["export"] = ",".join(names + ([] if "swanlab" in names else ["swanlab"]))
    out, interrupted = run_perf(kw)
    from ..cli import finish_run

    finish_run(str(out), kw)
    if interrupted:
        click.echo(f"lmgauge: interrupted; what was measured is saved in {out}", err=True)
        sys.exit(130)


# -- settings --------------------------------------------------------------------------
@dataclass
class Level:
    concurrency: int | None
    rate: float | None
    count: int


def plan_levels(kw: dict[str, Any]) -> list[Level]:
    conc, number, rates = list(kw.get("concurrency") or ()), list(kw.get("number") or ()), list(kw.get("rate") or ())
    if rates and len(conc) > 1:
        raise ConfigError(f"--rate takes at most one --concurrency value (the cap on requests in flight), got {len(conc)}",
                          "sweep either --concurrency or --rate")
    levels = rates or conc or [1]
    if number and len(number) not in (1, len(levels)):
        what = "--rate" if rates else "--concurrency"
        raise ConfigError(f"--number has {len(number)} values for {len(levels)} {what} levels",
                          f"give one --number, or one per {what} value")
    dur = kw.get("duration")
    plan = []
    for i, lv in enumerate(levels):
        if number:
            n = number[i] if len(number) > 1 else number[0]
        elif dur:
            n = UNBOUNDED
        else:
            n = 100 if rates else max(10, 4 * int(lv))
        if rates:
            plan.append(Level(conc[0] if conc else None, float(lv), n))
        else:
            plan.append(Level(int(lv), None, n))
    return plan


def validate(kw: dict[str, Any]) -> None:
    if not kw.get("model"):
        raise ConfigError("no model given", "pass --model NAME")
    for a, b in (("min_prompt_length", "max_prompt_length"), ("min_tokens", "max_tokens")):
        if kw.get(a) is not None and kw.get(b) is not None and kw[a] > kw[b]:
            raise ConfigError(f"--{a.replace('_', '-')} {kw[a]} is larger than --{b.replace('_', '-')} {kw[b]}")
    api = kw.get("api")
    if api not in (None, "openai", "chat", "completions"):
        raise ConfigError(f"--api {api!r}: use chat or completions (or openai, which follows --url)")
    if kw["backend"] == "openai" and not kw.get("url"):
        raise ConfigError("no --url given", "e.g. --url http://127.0.0.1:8000/v1/chat/completions")
    if kw.get("prompt") is not None and not kw["prompt"].strip():
        raise ConfigError("--prompt is empty")


@dataclass
class RequestSource:
    """Where a level's requests come from (picklable: worker processes rebuild the same
    seeded requests from it)."""

    dataset: str | None
    prompt: str | None
    options: dict[str, Any] = field(default_factory=dict)

    def requests(self, tok, count: int, seed_offset: int = 0) -> Iterator[Any]:
        from .requests import make_request

        opts = dict(self.options, tokenizer=tok, seed=self.options.get("seed", 0) + seed_offset)
        if self.prompt is not None:
            return (make_request(self.prompt, opts, i) for i in range(count))
        from ..plugins import get_manager

        return get_manager().get("datasets", self.dataset)(opts).requests(count)


def _api(kw: dict[str, Any]) -> str:
    url = (kw.get("url") or "").rstrip("/")
    if url.endswith("/chat/completions"):
        return "chat"
    if url.endswith("/completions"):
        return "completions"
    return kw["api"] if kw.get("api") in ("chat", "completions") else "chat"


# -- the run ---------------------------------------------------------------------------
def run_perf(kw: dict[str, Any]) -> tuple[Path, bool]:
    """Check everything, run every level, write the run folder. Returns (folder, interrupted)."""
    from ..config import redact, resolve_api_key
    from ..interfaces import BackendConfig
    from ..plugins import get_manager
    from ..tokenizers import from_hf, load_tokenizer
    from .metrics import parse_slo

    validate(kw)
    levels = plan_levels(kw)
    slo = parse_slo(kw.get("slo"))
    pm = get_manager()
    backend_cls = pm.get("backends", kw["backend"])
    if kw.get("prompt") is None:
        pm.get("datasets", kw["dataset"])
    workers = kw.get("workers") or 1
    if workers > 1 and getattr(backend_cls, "process_local", False):
        raise ConfigError(f"--workers {workers} cannot be used with the {kw['backend']} backend (it holds the model in-process)",
                          "use --workers 1")
    api = _api(kw)
    bconf = BackendConfig(model=kw["model"], base_url=kw.get("url"), api_key=resolve_api_key(kw.get("api_key")), api=api,
                          headers=dict(kw.get("headers") or {}), connect_timeout=kw["connect_timeout"],
                          read_timeout=kw["read_timeout"], options=dict(kw.get("backend_options") or {}))
    tok_spec = kw.get("tokenizer")
    tok = load_tokenizer(tok_spec) if tok_spec else None
    backend = backend_cls(bconf)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(backend.start())
        if tok is None and hasattr(getattr(backend, "tokenizer", None), "encode"):
            tok = from_hf(backend.tokenizer, kw["model"])  # an in-process backend's own tokenizer
        if tok is None and kw.get("dataset") == "random" and kw.get("prompt") is None:
            tok_spec = "cl100k_base"
            tok = load_tokenizer(tok_spec)
            click.echo("note: --dataset random without --tokenizer: prompt lengths are counted in cl100k_base tokens", err=True)
        if tok is not None and hasattr(backend, "token_counter"):
            backend.token_counter = tok.count
        source = RequestSource(kw.get("dataset"), kw.get("prompt"), {
            "dataset_path": kw.get("dataset_path"), "min_prompt_length": kw.get("min_prompt_length"),
            "max_prompt_length": kw.get("max_prompt_length"), "prefix_length": kw.get("prefix_length"),
            "min_tokens": kw.get("min_tokens"), "max_tokens": kw.get("max_tokens"), "temperature": kw.get("temperature"),
            "extra_args": kw.get("extra_args") or {}, "stream": kw.get("stream", True), "seed": kw.get("seed") or 0,
            "api": api, "model": kw["model"]})
        next(iter(source.requests(tok, 1)), None)  # dataset problems show up now, in one line

        out = Path(kw.get("output") or Path("runs") / f"perf-{_slug(kw['model'])}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run folder {out}: {exc.strerror or exc}", "pass another --output") from None
        import yaml

        saved = redact({k: v for k, v in kw.items() if k not in ("api_key", "swanlab_api_key")})
        saved["api"] = api
        (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, allow_unicode=True), encoding="utf-8")
        interrupted = _sweep(kw, loop, backend, backend_cls, bconf, tok, tok_spec, levels, slo, out, saved, workers, source)
        return out, interrupted
    finally:
        try:
            loop.run_until_complete(backend.close())
        finally:
            loop.close()
            asyncio.set_event_loop(None)


def _sweep(kw, loop, backend, backend_cls, bconf, tok, tok_spec, levels, slo, out, saved, workers, source) -> bool:
    from .loadgen import Load, count_prompt_tokens, prebuilt, run_in_loop, run_load, run_workers, schedule
    from .metrics import aggregate, request_metrics
    from .output import PerfStore, best_and_advice, percentile_table, summary_table, write_summary

    count = tok.count if tok is not None else None
    summary: dict[str, Any] = {"kind": "perf", "model": kw["model"], "url": kw.get("url"), "backend": kw["backend"],
                               "name": kw.get("name"), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "config": saved, "load_time_s": backend.load_time_s,
                               "tokenizer": tok.name if tok is not None else None, "runs": []}
    store = PerfStore(out / "perf.sqlite")
    interrupted = False
    try:
        for run_id, lv in enumerate(levels, 1):
            load = Load(count=lv.count, concurrency=lv.concurrency, rate=lv.rate, burstiness=kw["burstiness"],
                        duration=kw.get("duration"), seed=kw.get("seed") or 0)
            if kw.get("warmup"):
                wl = Load(count=kw["warmup"], concurrency=lv.concurrency or min(kw["warmup"], 8))
                witems = list(schedule(wl, source.requests(tok, kw["warmup"], seed_offset=1)))
                warm = run_in_loop(loop, lambda res: run_load(backend, witems, wl, res))
                if warm.interrupted:
                    interrupted = True
                    break
            progress = _Progress(lv.count, kw.get("log_every"), lv)
            if workers > 1:
                result = run_workers(workers, kw["backend"], bconf, tok_spec, source, load)
            else:
                items = prebuilt(schedule(load, source.requests(tok, lv.count)), 1000 if lv.count == UNBOUNDED else 20_000)
                result = run_in_loop(loop, lambda res: run_load(backend, items, load, res, on_done=progress.done))
                count_prompt_tokens(result.records, count)
            records = sorted(result.records, key=lambda r: r.index)
            metrics = [request_metrics(r, count) for r in records]
            run = aggregate(records, metrics, wall_s=result.wall_s, concurrency=lv.concurrency, rate=lv.rate, slo=slo,
                            cpu_s=result.cpu_s)
            run["workers"] = workers
            run["clock_origin"] = result.started  # perf_counter() at the level's start: sqlite *_s columns count from it
            run["tokenizer"] = summary["tokenizer"]
            if result.interrupted:
                run["interrupted"] = True
                run["abandoned_in_flight"] = result.abandoned
            summary["runs"].append(run)
            store.add_run(run_id, run, records, metrics, result.started)
            best, advice = best_and_advice(summary["runs"], in_process=bool(getattr(backend_cls, "process_local", False)))
            summary["best"], summary["recommendations"] = best, advice
            write_summary(out / "summary.json", summary)
            click.echo(percentile_table(run))
            if result.interrupted:
                interrupted = True
                break
    finally:
        store.close()
    if summary["runs"]:
        click.echo(summary_table(summary))
    click.echo(f"run folder: {out}")
    return interrupted


class _Progress:
    def __init__(self, total: int, every: int | None, lv: Level):
        self.total = "?" if total >= UNBOUNDED else str(total)
        self.every, self.n = every, 0
        self.label = f"rate {lv.rate:g}" if lv.rate is not None else f"concurrency {lv.concurrency}"
        self.last = time.monotonic()
        self.failed = 0

    def done(self, rec) -> None:
        self.n += 1
        self.failed += 0 if rec.success else 1
        if self.every:
            if self.n % self.every:
                return
        else:
            now = time.monotonic()
            if now - self.last < 5.0:
                return
            self.last = now
        click.echo(f"perf {self.label}: {self.n}/{self.total} requests done, {self.failed} failed", err=True)
