"""One ``lmgauge perf`` run: check everything, then every level (or SLA probe) with its
warm-up, load, per-request rows, level figures, perf.sqlite and summary.json after each.

Everything that can be wrong with the input (flags, tokenizer, dataset file, server reachable,
model served) is checked before the run folder is created, and reported in one line.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from ..interfaces import Backend, PerfMetric, RequestSettings
from ..options import values_for
from ..redaction import redact
from ..runfolder import PerfLevel, PerfStore, PerfSummary
from ..runfolder.schema import now_iso
from .levels import UNBOUNDED, Level, plan_levels, sla_search
from .source import RequestSource, check_first_request

if TYPE_CHECKING:
    from .config import PerfConfig


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.rstrip("/").rsplit("/", 1)[-1])[:60] or "model"


def default_output(model: str) -> Path:
    return Path("runs") / f"perf-{_slug(model)}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def write_summary(path: Path, summary: PerfSummary) -> None:
    import orjson

    from ..files import atomic_write

    atomic_write(path, orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def run_perf(c: PerfConfig, pm: Any) -> tuple[Path, bool]:
    """Check everything, run every level, write the run folder. Returns (folder, interrupted)."""
    from ..runsetup import create_folder, make_backend
    from ..tokenizers import load_tokenizer
    from .metrics import parse_slo
    from .registry import perf_metrics

    from ..runsetup import check_exporters

    check_exporters(c.export, pm)  # an unknown exporter fails now, not after the run
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
    if c.stop_on_saturation and c.workers > 1:
        raise ConfigError("--stop-on-saturation watches the load from one client process",
                          "drop --workers (or --stop-on-saturation)")
    if c.ray:
        from ..scale import import_ray

        import_ray()  # missing Ray is one line, before the run folder exists
    urls = c.urls or ([c.url] if c.url else [])
    backend = make_backend(pm, c.backend, model=c.model, urls=urls, api_key=c.api_key, api=c.api,
                           connect_timeout=c.connect_timeout, read_timeout=c.read_timeout, options=c.options,
                           replicas=c.replicas, gpus_per_replica=c.gpus_per_replica, ray_address=c.ray_address)
    bconf = getattr(backend, "config", None)
    if c.server_metrics is not None:
        from .server_metrics import server_metrics_target

        scrape = server_metrics_target(c, bconf)
    else:
        scrape = None
    tok = load_tokenizer(c.tokenizer) if c.tokenizer else None
    tok_spec = c.tokenizer
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    lock = None
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
        out = Path(c.output) if c.output else default_output(c.model)
        saved = c.to_dict()
        saved["api"] = backend.api
        saved = redact({**saved, **values_for(backend_cls, c.options), **source.options})
        lock = create_folder(out, "perf", saved)
        resetter = None
        if c.reset_cache:
            from .reset_cache import CacheReset

            resetter = CacheReset.for_run(c, bconf)
        run = PerfRun(c, loop, backend, backend_cls, bconf, tok, tok_spec, levels, slo, out, saved, source,
                      perf_metrics(pm), search, scrape, resetter=resetter)
        return out, run.sweep()
    finally:
        try:
            loop.run_until_complete(backend.close())
        finally:
            loop.close()
            asyncio.set_event_loop(None)
            if lock is not None:
                lock.release()


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
    metrics: list[PerfMetric]
    search: Any = None  # lmgauge.perf.sla.SLASearch with --sla-search
    scrape: tuple[str, dict[str, str]] | None = None  # --server-metrics: (URL, headers)
    resetter: Any = None  # --reset-cache: lmgauge.perf.reset_cache.CacheReset
    fresh: bool = True    # the backend's connections are new (nothing sent since start)
    _live_threads: list = field(default_factory=list, repr=False)  # summary.json `current` writers

    def drain_live(self) -> None:
        """Wait for the live writers, then drop ``current``: a level's own figures replace it."""
        for thread in self._live_threads:
            thread.join()
        self._live_threads.clear()
        self.summary.current = None

    def sweep(self) -> bool:
        """Run every level (or the SLA search's probes); write perf.sqlite and summary.json
        after each. Returns whether the run was interrupted."""
        from .registry import metric_columns
        from .tables import summary_text

        c, tok = self.c, self.tok
        self.summary = PerfSummary(
            model=c.model, url=c.url, urls=c.urls or None, backend=c.backend, name=c.name, created=now_iso(),
            config=self.saved, load_time_s=self.backend.load_time_s, tokenizer=tok.name if tok is not None else None,
            api=self.backend.api, generates_text=self.backend.generates_text, trials=c.trials)
        self.store = PerfStore(self.out / "perf.sqlite", metric_columns(self.metrics))
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
                    if self.c.stop_on_saturation and self.saturated(self.levels[run_id:]):
                        break
        finally:
            self.store.close()
            if self._live_threads or self.summary.current is not None:  # interrupted mid-level
                self.drain_live()
                write_summary(self.out / "summary.json", self.summary)
        if self.summary.runs:
            click.echo(summary_text(self.summary, self.metrics))
        if self.search is not None:
            click.echo(self.search.answer())
        click.echo(f"run folder: {self.out}")
        return interrupted

    def sla_sweep(self) -> bool:
        """Probe the loads the SLA search asks for, one level each."""
        search = self.search
        count = self.levels[0].count if self.c.number else None
        for run_id, load in enumerate(search.loads(), 1):
            n = count or (max(20, 4 * int(load)) if search.dimension == "concurrency" else max(20, math.ceil(10 * load)))
            lv = (Level(int(load), None, n) if search.dimension == "concurrency"
                  else Level(self.c.concurrency[0] if self.c.concurrency else None, load, n))
            interrupted = self.run_level(run_id, lv)
            run = self.summary.runs[-1]
            probe = search.record(load, run)
            run.sla = {"met": probe.met, "failed": probe.failed, "values": probe.values}
            self.summary.sla_search = search.summary()
            write_summary(self.out / "summary.json", self.summary)
            click.echo(f"SLA probe {search.label(load)}: {'met' if probe.met else 'missed ' + ', '.join(probe.failed)}")
            if interrupted:
                return True
        self.summary.sla_search = search.summary()
        write_summary(self.out / "summary.json", self.summary)
        return False

    def run_level(self, run_id: int, lv: Level) -> bool:
        """One level: its trials (one without ``--trials``), merged; perf.sqlite and
        summary.json. Returns whether it was interrupted."""
        from .advice import best_and_advice
        from .tables import percentile_table
        from .trials import level_ci, merge_trials

        c = self.c
        trials = []
        interrupted = False
        for number in range(1, (c.trials or 1) + 1):
            trial, interrupted = self.run_trial(run_id, lv, number if c.trials else None)
            if trial is None:  # interrupted during the warm-up
                break
            trials.append(trial)
            if (c.trials or 1) > 1:
                t = trial.level
                click.echo(f"perf {lv.label}: trial {number}/{c.trials}: {t.succeeded}/{t.requests} ok, "
                           f"{t.stat('request_throughput') or 0:.2f} req/s, "
                           f"{t.stat('output_token_throughput') or 0:.1f} output tok/s", err=True)
            if interrupted or trial.level.stopped:
                break
        if not trials:
            return True
        if len(trials) == 1:
            run = trials[0].level
            run.trial = None
        else:
            run = merge_trials(trials, self.metrics, concurrency=lv.concurrency, rate=lv.rate, slo=self.slo)
            if getattr(trials[0].level, "notes", None):
                run.notes = trials[0].level.notes
        rows = [r for t in trials for r in t.rows]
        if c.trials:
            from .reset_cache import level_record

            run.trials = len(trials)
            run.ci = level_ci(run, run.per_trial or [], rows, self.metrics, seed=c.seed)
            resets = [t.level.reset_cache for t in trials if t.level.reset_cache]
            if resets:
                run.reset_cache = level_record(resets)
        elif run.reset_cache:
            from .reset_cache import level_record

            run.reset_cache = level_record([run.reset_cache])
        self.drain_live()
        self.summary.runs.append(run)
        self.store.add_level(run_id, run, rows)
        in_process = bool(getattr(self.backend_cls, "process_local", False))
        self.summary.best, self.summary.recommendations = best_and_advice(self.summary.runs, in_process=in_process)
        write_summary(self.out / "summary.json", self.summary)
        click.echo(percentile_table(run, self.metrics))
        nodes = [n for t in trials for n in (getattr(t, "nodes", None) or [])]
        if nodes:
            from ..scale.ray_perf import describe_nodes

            for line in describe_nodes(nodes):
                click.echo(line)
        return interrupted

    def saturated(self, rest: list[Level]) -> bool:
        """``--stop-on-saturation`` after a level of a sweep: stop climbing when it was
        over-saturated or past the knee (lmgauge.perf.saturation.knee_stop)."""
        from .saturation import knee_stop

        verdict = knee_stop(self.summary.runs)
        if verdict is None:
            return False
        verdict["skipped"] = [lv.label for lv in rest]
        self.summary.saturation = verdict
        write_summary(self.out / "summary.json", self.summary)
        more = f"; not run: {', '.join(verdict['skipped'])}" if rest else ""
        click.echo(f"saturation: {verdict['reason']}{more}")
        return True

    def prepare_trial(self, trial: int | None) -> dict[str, Any] | None:
        """Before a trial: fresh connections (``--trials`` ≥ 2) and the cache reset
        (``--reset-cache``); returns what the reset did."""
        c = self.c
        if (c.trials or 1) > 1 and not self.fresh and c.workers == 1 and not getattr(self.backend_cls, "process_local", False):
            self.loop.run_until_complete(self.backend.close())
            self.loop.run_until_complete(self.backend.start())
        self.fresh = False
        if self.resetter is None:
            return None
        done = self.resetter.reset()
        for line in self.resetter.notes:
            click.echo(f"note: {line}", err=True)
        self.resetter.notes.clear()
        if trial is not None:
            done["trial"] = trial
        return done

    def live_writer(self, lv: Level, trial: int | None):
        """summary.json's ``current`` while a level runs (one process; shards report at their
        end): written by one background thread, the latest snapshot only."""
        if self.c.workers > 1:
            return None
        import threading

        state = {"pending": None, "busy": False}
        lock = threading.Lock()

        def write() -> None:
            while True:
                with lock:
                    snap, state["pending"] = state["pending"], None
                    if snap is None:
                        state["busy"] = False
                        return
                if trial is not None:
                    snap["trial"] = trial
                self.summary.current = snap
                try:
                    write_summary(self.out / "summary.json", self.summary)
                except OSError:
                    pass

        def live(snap: dict[str, Any]) -> None:
            with lock:
                state["pending"] = snap
                if state["busy"]:
                    return
                state["busy"] = True
            thread = threading.Thread(target=write, name="lmgauge-live-summary", daemon=True)
            self._live_threads.append(thread)
            thread.start()

        return live

    def run_trial(self, run_id: int, lv: Level, trial: int | None):
        """One trial of a level: fresh connections and cache reset, warm-up, the load, its
        rows and figures. Returns (the trial, or None when the warm-up was interrupted;
        whether it was interrupted)."""
        from .loadgen import Load, count_prompt_tokens, prebuilt, run_in_loop, run_load, schedule
        from .metrics import aggregate, request_row
        from .registry import computation_order
        from .trials import Trial

        c, tok = self.c, self.tok
        count = tok.count if tok is not None else None
        load = Load(count=lv.count, concurrency=lv.concurrency, rate=lv.rate, burstiness=c.burstiness,
                    duration=c.duration, seed=c.seed, ramp=lv.ramp, timed=lv.timed)
        reset = self.prepare_trial(trial)
        if c.warmup:
            wl = Load(count=c.warmup, concurrency=lv.concurrency or min(c.warmup, 8))
            witems = list(schedule(wl, self.source.requests(tok, c.warmup, seed_offset=1)))
            warm = run_in_loop(self.loop, lambda res: run_load(self.backend, witems, wl, res))
            if warm.interrupted:
                return None, True
        progress = _Progress(lv.count, c.log_every, lv, live=self.live_writer(lv, trial))
        scraper = scraped = stopped = None
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
                if c.stop_on_saturation and not self.sessions():
                    result, stopped = self.watched_load(items, load, progress)
                else:
                    result = run_in_loop(self.loop, lambda res: run_load(self.backend, items, load, res,
                                                                         on_done=progress.done))
                count_prompt_tokens(result.records, count)
        finally:
            if scraper is not None:
                scraped = scraper.stop_thread() if c.workers > 1 else self.loop.run_until_complete(scraper.stop())
        records = sorted(result.records, key=lambda r: r.index)
        per_request = computation_order(self.metrics)
        rows = [request_row(r, per_request, count, result.started, run_id) for r in records]
        for row in rows:
            row.trial = trial
        run = aggregate(records, rows, self.metrics, wall_s=result.wall_s, concurrency=lv.concurrency, rate=lv.rate,
                        slo=self.slo, cpu_s=result.cpu_s)
        run.workers = c.workers
        if lv.concurrency and lv.rate is None and not lv.timed and lv.ramp is None and run.requests < lv.concurrency:
            run.notes = [f"concurrency {lv.concurrency} with {run.requests} requests: at most {run.requests} were "
                         "ever in flight (send more with --number)"]
        run.api = self.backend.api  # the endpoint kind: the tables show what makes sense for it
        run.generates_text = self.backend.generates_text
        run.input_unit = getattr(self.backend, "input_unit", None)
        self.add_workload_figures(run, lv, records, rows, result.started)
        run.clock_origin = result.started  # perf_counter() at the level's start: sqlite *_s columns count from it
        run.tokenizer = self.summary.tokenizer
        if getattr(result, "nodes", None):
            run.nodes = result.nodes
        if result.interrupted:
            run.interrupted = True
            run.abandoned_in_flight = result.abandoned
        if stopped is not None:
            run.stopped = stopped
            run.abandoned_in_flight = result.abandoned
            click.echo(f"perf {lv.label}: stopped: {stopped['reason']}", err=True)
        run.trial = trial
        run.reset_cache = reset
        if scraped is not None:
            from .server_metrics import store as store_series
            from .server_metrics import summary as series_summary

            run.server_metrics = series_summary(scraped)
            store_series(self.store.db, run_id, scraped, result.started)
            if run.server_metrics.get("warning"):
                click.echo(f"lmgauge: warning: {run.server_metrics['warning']}", err=True)
        done = Trial(trial or 1, run, records, rows, result.wall_s, result.cpu_s)
        done.nodes = result.nodes  # type: ignore[attr-defined]
        return done, result.interrupted

    def sessions(self) -> bool:
        """The dataset yields multi-turn sessions (no over-saturation test for those)."""
        if not hasattr(self, "_sessions"):
            from ..types import Session

            first = next(iter(self.source.requests(self.tok, 1)), None)
            self._sessions = isinstance(first, Session)
            if self._sessions:
                click.echo("note: --stop-on-saturation does not watch multi-turn sessions", err=True)
        return self._sessions

    def watched_load(self, items, load, progress):
        """The level's load with the over-saturation test watching it (lmgauge.perf.saturation);
        returns (the load's result, the verdict when it stopped the level, else None)."""
        from .loadgen import run_in_loop, run_load
        from .saturation import Counted, SaturationDetector, watch

        counted = Counted(items)
        answered = [0]
        verdict: dict[str, Any] = {}

        async def level(res):
            detector = SaturationDetector(time.perf_counter())

            def done(rec):
                answered[0] += 1
                detector.done(rec)
                progress.done(rec)
            task = asyncio.ensure_future(run_load(self.backend, counted, load, res, on_done=done))
            watcher = asyncio.ensure_future(watch(task, detector, counted, answered))
            try:
                return await task
            finally:
                if not watcher.done():
                    watcher.cancel()
                elif not watcher.cancelled() and watcher.result() is not None:
                    verdict.update(watcher.result())

        result = run_in_loop(self.loop, level)
        if verdict:
            result.interrupted = False  # the test stopped it, not Ctrl-C
        return result, (verdict or None)

    def add_workload_figures(self, run: PerfLevel, lv: Level, records: list, rows: list, origin: float) -> None:
        """Per-turn and per-session figures of a multi-turn level; the ramp or trace that paced
        a level, with offered vs achieved rate per second."""
        from .metrics import per_endpoint, per_session, per_turn, timeline

        if self.c.urls:
            run.endpoints = per_endpoint(records, rows, self.metrics, wall_s=run.duration_s, slo=self.slo)
        sessions = per_session(records)
        if sessions is not None:
            run.sessions = sessions
            run.turns = per_turn(records, rows, self.metrics, slo=self.slo)
        if lv.ramp is not None:
            r = lv.ramp
            run.ramp = {"kind": r.kind, "start_rps": r.start, "end_rps": r.end, "span_s": r.span}
        if lv.timed:
            run.trace = {"dataset": self.c.dataset, "path": self.c.dataset_path}
        if lv.ramp is not None or lv.timed:
            run.label = lv.label
            sched = sorted(r.scheduled for r in records if r.scheduled)
            if len(sched) > 1 and sched[-1] > sched[0]:
                run.scheduled_rate = (len(sched) - 1) / (sched[-1] - sched[0])
            run.timeline = timeline(records, rows, origin)

    def run_shards(self, load):
        """The level split over ``--workers`` processes, or Ray actors with ``--ray``."""
        c = self.c
        if c.ray:
            from ..scale import ray_perf_workers

            return ray_perf_workers(c.workers, c.backend, self.bconf, self.tok_spec, self.source, load, c.ray_address)
        from .loadgen import run_workers

        return run_workers(c.workers, c.backend, self.bconf, self.tok_spec, self.source, load)


LIVE_EVERY_S = 2.0  # how often a running level's figures so far reach summary.json (``current``)


class _Progress:
    """The progress line of a level, and its figures so far (requests done, failed, TTFT and
    latency of the finished ones) handed every :data:`LIVE_EVERY_S` to ``live`` (which writes
    summary.json's ``current`` from a thread of its own: the load generator never waits on a
    file)."""

    def __init__(self, total: int, every: int | None, lv: Level, live: Any = None):
        self.total = "?" if total >= UNBOUNDED else str(total)
        self.total_n = None if total >= UNBOUNDED else total
        self.every, self.n = every, 0
        self.label = lv.label
        self.last = self.last_live = self.started = time.monotonic()
        self.failed = 0
        self.sessions = 0  # sessions ended (multi-turn: the total counts sessions, n counts turns)
        self.live = live
        self.ttft: list[float] = []
        self.latency: list[float] = []

    def done(self, rec) -> None:
        self.n += 1
        self.failed += 0 if rec.success else 1
        if rec.session is not None and (not rec.success or rec.turn == rec.turns):
            self.sessions += 1
        if self.live is not None:
            if rec.success:
                if rec.first_token is not None:
                    self.ttft.append(rec.first_token - rec.sent)
                self.latency.append(rec.end - rec.sent)
            now = time.monotonic()
            if now - self.last_live >= LIVE_EVERY_S:
                self.last_live = now
                self.live(self.snapshot(now))
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

    def snapshot(self, now: float) -> dict[str, Any]:
        from ..runfolder import Distribution

        elapsed = now - self.started
        ttft, lat = Distribution.of(self.ttft), Distribution.of(self.latency)
        return {"label": self.label, "requests": self.n, "failed": self.failed, "total": self.total_n,
                "elapsed_s": round(elapsed, 3), "rps": round((self.n - self.failed) / elapsed, 3) if elapsed > 0 else None,
                "ttft_p50_s": ttft.get("p50"), "ttft_p99_s": ttft.get("p99"), "latency_p50_s": lat.get("p50"),
                "latency_p99_s": lat.get("p99")}
