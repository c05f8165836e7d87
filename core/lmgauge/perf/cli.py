"""``lmgauge perf``: load-test a server (or an in-process backend) over a sweep.

Flag names follow the issue contract; EvalScope's names are accepted as aliases
(``--parallel``, ``-n``, ``--tokenizer-path``, ``--api openai``, ``--name``,
``--log-every-n-query``). List flags take several values after one flag, as in EvalScope:
``--concurrency 1 10 50 --number 10 100 500``.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from ..errors import ConfigError, LmgaugeError
from ..export import export_click_options

LIST_FLAGS = {"--concurrency", "--parallel", "--number", "-n", "--rate"}


class ListFlagsCommand(click.Command):
    """Lets ``--concurrency 1 10 50`` mean ``--concurrency 1 --concurrency 10 --concurrency 50``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        flag = None
        for a in args:
            if a in LIST_FLAGS:
                flag = a
                out.append(a)
                continue
            if flag and re.fullmatch(r"\d+(\.\d+)?", a) and out and out[-1] not in LIST_FLAGS:
                out += [flag, a]
                continue
            flag = None if a.startswith("-") else flag
            if flag and out and out[-1] in LIST_FLAGS:
                out.append(a)
                continue
            flag = None
            out.append(a)
        return super().parse_args(ctx, out)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.rsplit("/", 1)[-1])[:60] or "model"


@click.command("perf", cls=ListFlagsCommand, context_settings={"show_default": False})
@click.option("--url", default=None, help="Endpoint: http://HOST:PORT/v1/chat/completions or /v1/completions (openai backend).")
@click.option("--model", default=None, help="Model name as served (or a path/alias for in-process backends).")
@click.option("--api-key", default=None, help="API key (default: $LMGAUGE_API_KEY or $OPENAI_API_KEY). Never written anywhere.")
@click.option("--backend", default="openai", help="Backend plugin (default openai; transformers runs the model in-process).")
@click.option("--concurrency", "--parallel", "concurrency", type=int, multiple=True, help="Closed-loop concurrency levels, e.g. 1 10 50 100.")
@click.option("--number", "-n", "number", type=int, multiple=True, help="Requests per level (one value, or one per level).")
@click.option("--rate", type=float, multiple=True, help="Open-loop request rates (req/s, Poisson), e.g. 2 4 8.")
@click.option("--burstiness", type=float, default=1.0, help="Gamma shape of arrivals for --rate (1 = Poisson, <1 burstier).")
@click.option("--duration", type=float, default=None, help="Stop scheduling new requests after this many seconds per level.")
@click.option("--warmup", type=int, default=0, help="Requests sent before each level and not measured.")
@click.option("--stream/--no-stream", default=True, help="Streaming requests (default) or one response per request.")
@click.option("--dataset", default="openqa", help="Prompt source: random, openqa, line_by_line, custom (see `lmgauge plugins`).")
@click.option("--dataset-path", default=None, help="File for the dataset (line_by_line, custom, openqa=HC3 file).")
@click.option("--prompt", default=None, help="Send this one prompt for every request (instead of --dataset).")
@click.option("--tokenizer", "--tokenizer-path", "tokenizer", default=None, help="cl100k_base, a tokenizer folder, a .gguf file or a hub id.")
@click.option("--min-prompt-length", type=int, default=None, help="random: minimum prompt tokens.")
@click.option("--max-prompt-length", type=int, default=None, help="random: maximum prompt tokens.")
@click.option("--prefix-length", type=int, default=0, help="random: tokens of a prefix shared by all prompts.")
@click.option("--min-tokens", type=int, default=None, help="Minimum output tokens (sends min_tokens and ignore_eos).")
@click.option("--max-tokens", type=int, default=None, help="Maximum output tokens per request.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default: server's).")
@click.option("--extra-args", default=None, metavar="JSON", help="Extra JSON fields for every request body.")
@click.option("--headers", "--header", "headers", multiple=True, metavar="K=V", help="Extra HTTP header (repeatable).")
@click.option("--connect-timeout", type=float, default=30.0, help="Seconds to connect (default 30).")
@click.option("--read-timeout", type=float, default=600.0, help="Seconds without data before a request fails (default 600).")
@click.option("--slo", default=None, help="Service levels for goodput, e.g. ttft=500ms,tpot=50ms,latency=10s.")
@click.option("--workers", type=int, default=1, help="Client processes (for loads one process cannot drive).")
@click.option("--seed", type=int, default=0, help="Seed for prompts and arrival times.")
@click.option("--output", default=None, type=click.Path(file_okay=False), help="Run folder (default runs/perf-MODEL-TIME).")
@click.option("--api", default=None, help="chat or completions (default: from --url); EvalScope's 'openai' is accepted.")
@click.option("--name", default=None, help="A label for this run (shown in reports).")
@click.option("--log-every-n-query", "log_every", type=int, default=None, help="Print progress every N finished requests.")
@export_click_options
def perf(**kw: Any) -> None:
    """Load-test an OpenAI-compatible server: TTFT, ITL, TPOT, latency, throughput.

    \b
    lmgauge perf --url http://127.0.0.1:8000/v1/chat/completions --model M \\
        --concurrency 1 10 50 --number 10 100 500 --dataset random --tokenizer cl100k_base \\
        --min-prompt-length 1024 --max-prompt-length 1024 --max-tokens 256 --min-tokens 256
    lmgauge perf --backend transformers --model smollm2 --number 8 --concurrency 1 2
    """
    from ..cli_common import parse_json_object, parse_kv, pop_backend_options

    ctx = click.get_current_context()
    kw["backend_options"] = pop_backend_options(ctx.command, kw)
    kw["extra_args"] = parse_json_object(kw.get("extra_args"), "--extra-args") or {}
    kw["headers"] = parse_kv(kw.get("headers"), "--headers")
    out = run_perf(kw)
    from ..cli import finish_run

    finish_run(str(out), kw)


def plan_levels(kw: dict[str, Any]) -> list[tuple[int | None, float | None, int]]:
    conc, number, rates = list(kw.get("concurrency") or ()), list(kw.get("number") or ()), list(kw.get("rate") or ())
    if rates and any(r <= 0 for r in rates):
        raise ConfigError("--rate values must be positive")
    if any(c < 1 for c in conc):
        raise ConfigError("--concurrency values must be ≥ 1")
    if any(n < 1 for n in number):
        raise ConfigError("--number values must be ≥ 1")
    levels = rates or conc or [1]
    if number and len(number) not in (1, len(levels)):
        raise ConfigError(f"--number has {len(number)} values for {len(levels)} levels",
                          "give one --number, or one per --concurrency/--rate value")
    dur = kw.get("duration")
    plan = []
    for i, lv in enumerate(levels):
        if number:
            n = number[i] if len(number) > 1 else number[0]
        elif dur and rates:
            n = max(1, int(lv * dur * 1.5) + 10)
        elif dur:
            n = 10_000_000  # bounded by --duration
        else:
            n = max(10, 4 * int(lv)) if not rates else 100
        if rates:
            plan.append((conc[0] if len(conc) == 1 else None, float(lv), n))
        else:
            plan.append((int(lv), None, n))
    return plan


def validate(kw: dict[str, Any]) -> None:
    if not kw.get("model"):
        raise ConfigError("no model given", "pass --model NAME")
    for a, b in (("min_prompt_length", "max_prompt_length"), ("min_tokens", "max_tokens")):
        if kw.get(a) is not None and kw.get(b) is not None and kw[a] > kw[b]:
            raise ConfigError(f"--{a.replace('_', '-')} {kw[a]} is larger than --{b.replace('_', '-')} {kw[b]}")
    for key in ("min_prompt_length", "max_prompt_length", "prefix_length", "min_tokens", "max_tokens", "warmup"):
        if kw.get(key) is not None and kw[key] < 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be ≥ 0")
    if kw.get("workers", 1) < 1:
        raise ConfigError("--workers must be ≥ 1")
    if kw.get("burstiness", 1.0) <= 0:
        raise ConfigError("--burstiness must be positive")
    api = kw.get("api")
    if api not in (None, "openai", "chat", "completions"):
        raise ConfigError(f"--api {api!r}: use chat or completions")
    if kw["backend"] == "openai" and not kw.get("url"):
        raise ConfigError("no --url given", "e.g. --url http://127.0.0.1:8000/v1/chat/completions")


def run_perf(kw: dict[str, Any]) -> Path:
    from ..config import redact, resolve_api_key
    from ..interfaces import BackendConfig
    from ..plugins import get_manager
    from ..tokenizers import load_tokenizer
    from .metrics import parse_slo

    validate(kw)
    levels = plan_levels(kw)
    slo = parse_slo(kw.get("slo"))
    pm = get_manager()
    backend_cls = pm.get("backends", kw["backend"])
    dataset_cls = None if kw.get("prompt") else pm.get("datasets", kw["dataset"])
    api = kw.get("api") if kw.get("api") in ("chat", "completions") else "chat"
    if kw.get("url", "") and kw["url"].rstrip("/").endswith("/completions") and not kw["url"].rstrip("/").endswith("/chat/completions"):
        api = "completions"
    bconf = BackendConfig(model=kw["model"], base_url=kw.get("url"), api_key=resolve_api_key(kw.get("api_key")), api=api,
                          headers=dict(kw.get("headers") or {}), connect_timeout=kw["connect_timeout"],
                          read_timeout=kw["read_timeout"], options=dict(kw.get("backend_options") or {}))
    workers = kw.get("workers") or 1
    if workers > 1 and getattr(backend_cls, "process_local", False):
        raise ConfigError(f"--workers {workers} cannot be used with the {kw['backend']} backend (it holds the model in-process)",
                          "use --workers 1")
    out = Path(kw.get("output") or Path("runs") / f"perf-{_slug(kw['model'])}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    saved = redact({k: v for k, v in kw.items() if k != "api_key"})
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, allow_unicode=True), encoding="utf-8")

    tok_spec = kw.get("tokenizer")
    tok = load_tokenizer(tok_spec) if tok_spec else None
    backend = backend_cls(bconf)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(backend.start())
        return _sweep(kw, loop, backend, backend_cls, bconf, tok, tok_spec, levels, slo, out, saved, api, workers, dataset_cls)
    finally:
        try:
            loop.run_until_complete(backend.close())
        finally:
            loop.close()
            asyncio.set_event_loop(None)


def _sweep(kw, loop, backend, backend_cls, bconf, tok, tok_spec, levels, slo, out, saved, api, workers, dataset_cls) -> Path:
    from ..tokenizers import from_hf, load_tokenizer
    from .loadgen import cpu_seconds, run_load, run_workers
    from .metrics import aggregate, request_metrics
    from .output import PerfStore, best_and_advice, percentile_table, summary_table, write_summary
    from .requests import make_request

    if tok is None and hasattr(getattr(backend, "tokenizer", None), "encode"):
        tok = from_hf(backend.tokenizer, kw["model"])  # an in-process backend's own tokenizer
    if tok is None and kw.get("dataset") == "random" and not kw.get("prompt"):
        tok_spec = "cl100k_base"
        tok = load_tokenizer(tok_spec)
        click.echo("note: --dataset random without --tokenizer: prompt lengths are cl100k_base tokens", err=True)
    if tok is not None and hasattr(backend, "token_counter"):
        backend.token_counter = tok.count
    count = tok.count if tok is not None else None

    def make_requests(n: int, seed: int):
        opts = {"dataset_path": kw.get("dataset_path"), "tokenizer": tok, "min_prompt_length": kw.get("min_prompt_length"),
                "max_prompt_length": kw.get("max_prompt_length"), "prefix_length": kw.get("prefix_length"),
                "min_tokens": kw.get("min_tokens"), "max_tokens": kw.get("max_tokens"), "temperature": kw.get("temperature"),
                "extra_args": kw.get("extra_args"), "stream": kw.get("stream", True), "seed": seed, "api": api,
                "model": kw["model"]}
        if kw.get("prompt"):
            return [make_request(kw["prompt"], opts, i) for i in range(n)]
        return list(dataset_cls(opts).requests(n))

    summary: dict[str, Any] = {"kind": "perf", "model": kw["model"], "url": kw.get("url"), "backend": kw["backend"],
                               "name": kw.get("name"), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "config": saved, "load_time_s": backend.load_time_s, "runs": []}
    store = PerfStore(out / "perf.sqlite")
    interrupted = False
    try:
        for run_id, (conc, rate, n) in enumerate(levels, 1):
            dur = kw.get("duration")
            n_req = min(n, 100_000) if dur and n >= 10_000_000 else n
            requests = make_requests(n_req, kw["seed"])
            if kw.get("warmup"):
                warm: list = []
                loop.run_until_complete(run_load(backend, make_requests(kw["warmup"], kw["seed"] + 1), warm,
                                                 concurrency=conc or 1, rate=None))
            records: list = []
            origin = time.perf_counter()
            progress = _Progress(len(requests), kw.get("log_every"), conc, rate)
            cpu0 = cpu_seconds()
            try:
                if workers > 1:
                    loop.run_until_complete(backend.close())
                    wall, cpu = run_workers(workers, kw["backend"], bconf, tok_spec, requests, records, concurrency=conc,
                                            rate=rate, burstiness=kw["burstiness"], duration=dur, seed=kw["seed"])
                else:
                    wall = loop.run_until_complete(run_load(backend, requests, records, concurrency=conc, rate=rate,
                                                            burstiness=kw["burstiness"], duration=dur, seed=kw["seed"],
                                                            on_done=progress.done))
                    cpu = cpu_seconds() - cpu0
            except KeyboardInterrupt:
                interrupted = True
                wall = time.perf_counter() - origin
                cpu = cpu_seconds() - cpu0
                for task in asyncio.all_tasks(loop):
                    task.cancel()
            records.sort(key=lambda r: r.index)
            metrics = [request_metrics(r, count) for r in records]
            run = aggregate(records, metrics, wall_s=wall, concurrency=conc, rate=rate, slo=slo, cpu_s=cpu)
            if interrupted:
                run["interrupted"] = True
            summary["runs"].append(run)
            store.add_run(run_id, run, records, metrics, origin)
            best, advice = best_and_advice(summary["runs"], in_process=backend_cls.process_local)
            summary["best"], summary["recommendations"] = best, advice
            write_summary(out / "summary.json", summary)
            click.echo(percentile_table(run))
            if interrupted:
                break
    finally:
        store.close()
    click.echo(summary_table(summary))
    click.echo(f"run folder: {out}")
    if interrupted:
        click.echo(f"lmgauge: interrupted; what was measured is saved in {out}", err=True)
        sys.exit(130)
    return out


class _Progress:
    def __init__(self, total: int, every: int | None, conc, rate):
        self.total, self.every, self.n = total, every, 0
        self.label = f"rate {rate:g}" if rate is not None else f"concurrency {conc}"
        self.last = time.monotonic()

    def done(self, rec) -> None:
        self.n += 1
        now = time.monotonic()
        if (self.every and self.n % self.every == 0) or (not self.every and now - self.last >= 5.0):
            self.last = now
            click.echo(f"perf {self.label}: {self.n}/{self.total} requests done", err=True)
