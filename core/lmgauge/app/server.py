"""``lmgauge serve``: an aiohttp.web application over the run folders of one or more served
folders.

Routes (nothing else: an unknown path is 404, never the page):

=====================================  ===================================================
``GET /``                              the runs page
``GET /runs/{id}``                     one run: scores, health, perf views, the sample browser
``GET /runs/{id}/part``                the run page's sections (what a live update swaps in)
``GET /compare?run=A&run=B``           two or more runs side by side
``GET /compare/part?run=A&run=B``      the comparison's sections
``GET /api/runs``                      every run (JSON)
``GET /api/runs/{id}``                 one run's settings, results, health, perf levels
``GET /api/runs/{id}/samples``         a page of samples, filtered and searched
``GET /api/compare/samples``           questions of several runs with their outcomes
``GET /api/events``                    Server-Sent Events: one ``run`` event per run change
``GET /static/{name}``                 the page's script, style sheet and icon
=====================================  ===================================================

Ids are percent-encoded in paths (``%2F`` for ``/``); they only ever name folders the walk
found (runs.py), so no request names a file. The work that reads files (a page of samples, a
search, a comparison, rendering) runs in a thread pool; a watcher task re-reads what changed
every few hundred milliseconds and publishes the changes to the event streams.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import orjson
from aiohttp import web

from ..redaction import redact, redact_strings
from ..runfolder import SAMPLE_STATUSES
from . import views
from .journal import Filters
from .analyticsviews import sweep_view
from .perfviews import PerfRun, perf_view
from .render import json_block, render, static_files
from .runs import COMPLETE, INTERRUPTED, RUNNING, RunIndex, RunState
from .security import Guard

TICK_S = 0.25          # how often running runs are looked at
SLOW_CHECK_S = 2.0     # how often finished runs are
SCAN_S = 1.0           # how often the served folders are walked for new run folders
PING_S = 15.0          # SSE keep-alive comment
PAGE_SIZE = 25
PERF_COMPARE_CACHE = 16  # perf comparisons kept (a pair each, until either run changes)
MAX_LIMIT = 500
DEFAULT_CUT = 4000     # characters of a long text a page shows before "show all"


class BadRequest(Exception):
    pass


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """A failure inside a handler is one line on the server's output and a bare 500 for the
    client (no traceback, no path, no setting); ``LMGAUGE_DEBUG=1`` shows the traceback."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("LMGAUGE_DEBUG"):
            import traceback

            traceback.print_exc()
        text = " ".join(str(exc).split())[:300]
        print(f"lmgauge serve: error: GET {request.path}: {type(exc).__name__}: {text}", flush=True)
        return web.Response(status=500, text="500: internal error (the server's output says more)\n")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str), status=status,
                        content_type="application/json")


class App:
    """The server's state: the run index, the thread pools, the event subscribers."""

    def __init__(self, dirs: list[str], guard: Guard, workers: int = 4):
        self.index = RunIndex(dirs)
        self.guard = guard
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="lmgauge-serve")
        self.ticker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lmgauge-watch")
        self.loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lmgauge-index")
        self.subscribers: set[tuple[asyncio.Queue, frozenset[str] | None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task | None = None
        self._loading: set[str] = set()
        self._published: dict[str, int] = {}
        self._last_scan = 0.0
        self._perf_compare: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._perf_compare_lock = threading.Lock()
        self._perf_compare_busy: dict[tuple, threading.Lock] = {}

    # -- life cycle ----------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self.guard.middleware, errors_middleware], client_max_size=64 * 1024)
        app.on_response_prepare.append(self.guard.on_prepare)
        r = app.router
        r.add_get("/", self.page_runs)
        r.add_get("/runs/{id}", self.page_run)
        r.add_get("/runs/{id}/part", self.part_run)
        r.add_get("/compare", self.page_compare)
        r.add_get("/compare/part", self.part_compare)
        r.add_get("/api/runs", self.api_runs)
        r.add_get("/api/runs/{id}", self.api_run)
        r.add_get("/api/runs/{id}/samples", self.api_samples)
        r.add_get("/api/compare/samples", self.api_compare_samples)
        r.add_get("/api/events", self.api_events)
        r.add_get("/static/{name}", self.static)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.loop = asyncio.get_running_loop()
        self.loader.submit(_warm)
        await self.loop.run_in_executor(self.ticker, self.tick, True)
        self.prefetch()
        self._watch = asyncio.create_task(self._watcher())

    async def _stop(self, app: web.Application) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for q, _ in list(self.subscribers):
            q.put_nowait(None)
        for pool in (self.pool, self.ticker, self.loader):
            pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self.loop is not None
        return await self.loop.run_in_executor(self.pool, fn, *args)

    # -- watching ------------------------------------------------------------------------
    async def _watcher(self) -> None:
        assert self.loop is not None
        while True:
            try:
                now = time.monotonic()
                scan = now - self._last_scan >= SCAN_S
                events = await self.loop.run_in_executor(self.ticker, self.tick, scan)
                for ev in events:
                    self.publish(ev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watcher must go on
                print(f"lmgauge serve: warning: watching the run folders: {type(exc).__name__}: {exc}", flush=True)
            await asyncio.sleep(TICK_S)

    def tick(self, scan: bool) -> list[dict[str, Any]]:
        """One look at the run folders (in the watcher's thread): new and removed folders when
        ``scan``, then every running run (and finished runs every few seconds); the events of
        what changed."""
        events: list[dict[str, Any]] = []
        changed: list[RunState] = []
        if scan:
            self._last_scan = time.monotonic()
            added, removed = self.index.scan()
            events += [{"id": rid, "removed": True} for rid in removed]
            changed += added
        now = time.monotonic()
        for st in self.index.states():
            if st.status != RUNNING and now - st.checked < SLOW_CHECK_S and st not in changed:
                continue
            st.checked = now
            if st.refresh() and st not in changed:
                changed.append(st)
            if st.needs_journal() and st.eval is None:
                self.load_journal(st)
        sweeps = set()
        for st in changed:
            events.append({"id": st.id, "run": st.summary(self.index)})
            if st.run is not None and st.run.manifest is not None and st.run.manifest.sweep:
                sweeps.add(self.index.id_of(st.path / st.run.manifest.sweep))
        for sid in sweeps - {st.id for st in changed} - {None}:
            sweep = self.index.get(sid)
            if sweep is not None:
                events.append({"id": sweep.id, "run": self.sweep_summary(sweep)})
        return events

    def load_journal(self, st: RunState) -> None:
        """Index the run's journal in the loader thread (its first pass reads the whole file)."""
        if st.id in self._loading:
            return
        self._loading.add(st.id)

        def work() -> None:
            try:
                st.open_journal()
                trim_memory()
                if self.loop is not None and st.needs_journal():  # its figures come from the journal
                    self.loop.call_soon_threadsafe(self.publish, {"id": st.id, "run": st.summary(self.index)})
            except Exception as exc:  # noqa: BLE001
                print(f"lmgauge serve: warning: cannot index {st.path}: {type(exc).__name__}: {exc}", flush=True)
            finally:
                self._loading.discard(st.id)

        self.loader.submit(work)

    def prefetch(self) -> None:
        """Index every eval journal in the background, running and newest runs first, so a run
        page opens without the first pass."""
        states = [s for s in self.index.states() if s.run is not None and s.run.kind == "eval"]
        states.sort(key=lambda s: (s.status != RUNNING, -(s.sig.get("config.yaml") or (0, 0, 0))[1]))
        for st in states:
            self.load_journal(st)

    def publish(self, event: dict[str, Any]) -> None:
        run = event.get("run")
        if run is not None:  # an older state computed in another thread comes too late: drop it
            last = self._published.get(event["id"], -1)
            if run.get("version", 0) < last:
                return
            self._published[event["id"]] = run.get("version", 0)
        else:
            self._published.pop(event["id"], None)
        data = b"event: run\ndata: " + orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS, default=str) + b"\n\n"
        run = event.get("run") or {}
        ids = {event["id"], run.get("sweep"), run.get("source")}
        for q, wanted in list(self.subscribers):
            if wanted is not None and not (wanted & ids):
                continue
            try:
                q.put_nowait(data)
            except asyncio.QueueFull:
                pass

    # -- helpers -------------------------------------------------------------------------
    def state(self, request: web.Request) -> RunState:
        st = self.index.get(request.match_info["id"])
        if st is None:
            raise web.HTTPNotFound(text="404: no such run\n")
        return st

    def runs_data(self) -> list[dict[str, Any]]:
        out = []
        for st in self.index.states():
            out.append(self.sweep_summary(st) if st.display_kind == "sweep" else st.summary(self.index))
        out.sort(key=lambda r: (r.get("created") or "", r["id"]), reverse=True)
        return out

    def sweep_summary(self, st: RunState) -> dict[str, Any]:
        """A sweep's entry: its variants' status (running if one runs, complete when all are),
        how many are done."""
        base = dict(st.summary(self.index))
        variants = [v for v in self.index.states() if v is not st and v.run is not None and v.run.manifest is not None
                    and v.run.manifest.sweep and self.index.id_of(v.path / v.run.manifest.sweep) == st.id]
        statuses = [v.status for v in variants]
        if st.status == RUNNING or RUNNING in statuses:
            base["status"] = RUNNING
        elif statuses and all(s == COMPLETE for s in statuses):
            base["status"] = COMPLETE
        elif statuses:
            base["status"] = INTERRUPTED
        base["variants"] = sorted(v.id for v in variants)
        base["done"] = sum(1 for s in statuses if s == COMPLETE)
        base["total"] = len(variants) or base.get("total")
        base["resume"] = None
        return base

    def _perf_runs(self, states: list[RunState]) -> list[PerfRun]:
        from ..runfolder import run_labels

        labels = run_labels([s.run for s in states])
        return [PerfRun(labels[i], views.color(i), s.run, s.id) for i, s in enumerate(states)]

    # -- the run page --------------------------------------------------------------------
    def run_sections(self, st: RunState) -> str:
        run = st.run
        ctx: dict[str, Any] = {"s": st.summary(self.index), "error": st.error, "kind": st.display_kind,
                               "eval": None, "perf": None, "variants": None, "note": None, "current": None,
                               "sweep": None}
        if run is not None and run.kind == "eval":
            live = st.needs_journal()
            rows, summaries = st.live_results()
            ctx["eval"] = views.eval_view(run, rows, summaries, live=live)
            ctx["note"] = st.live.note if st.live is not None and live else None
        elif run is not None and run.kind == "perf":
            ctx["perf"] = perf_view(self._perf_runs([st]))
            current = run.summary.current if run.summary is not None else None
            if st.status == "running" and isinstance(current, dict):
                ctx["current"] = views.current_level(current)
        if st.display_kind == "sweep":
            ctx["s"] = self.sweep_summary(st)
            ctx["variants"] = [self.index.get(v).summary(self.index) for v in ctx["s"]["variants"] if self.index.get(v)]
            ctx["sweep"] = sweep_view(st.id, views.color(0), run) if run is not None and run.sweep else None
        return render("parts/run.html.j2", **ctx)

    def run_page_html(self, st: RunState, query: dict[str, str]) -> str:
        sections = self.run_sections(st)
        run = st.run
        samples = None
        if run is not None and run.kind == "eval":
            f, opts = parse_filters(query)
            if not query.get("cut"):
                opts["cut"] = DEFAULT_CUT
            journal = st.open_journal()
            first = self.sample_page(st, f, opts)
            samples = {"run": st.id, "page": first, "filters": _filters_json(query),
                       "benchmarks": list(journal.benchmarks), "subsets": {b: list(s) for b, s in journal.subsets.items()},
                       "repeats": sorted(journal.repeats), "page_size": opts["limit"], "cut": opts["cut"]}
        return render("run.html.j2", title=f"{st.summary(self.index)['model']} · {st.id}", s=st.summary(self.index),
                      sections=sections, samples=json_block(samples) if samples else None, run_id=st.id,
                      config=views.config_text(run.config) if run is not None else "{}", kind=st.display_kind)

    async def page_run(self, request: web.Request) -> web.Response:
        st = self.state(request)
        try:
            html = await self.run(self.run_page_html, st, dict(request.query))
        except BadRequest as exc:
            raise web.HTTPBadRequest(text=f"400: {exc}\n")
        return web.Response(text=html, content_type="text/html")

    async def part_run(self, request: web.Request) -> web.Response:
        st = self.state(request)
        return web.Response(text=await self.run(self.run_sections, st), content_type="text/html")

    # -- the runs page -------------------------------------------------------------------
    async def page_runs(self, request: web.Request) -> web.Response:
        runs = await self.run(self.runs_data)
        html = render("runs.html.j2", title="lmgauge runs", runs=json_block({"runs": runs}),
                      roots=[r.shown for r in self.index.roots], count=len(runs))
        return web.Response(text=html, content_type="text/html")

    # -- comparison ----------------------------------------------------------------------
    def compare_states(self, request: web.Request) -> list[RunState]:
        ids = [i for v in request.query.getall("run", []) for i in [v] if i]
        states = []
        for rid in dict.fromkeys(ids):
            st = self.index.get(rid)
            if st is None:
                raise web.HTTPNotFound(text="404: no such run\n")
            states.append(st)
        if len(states) < 2:
            raise web.HTTPBadRequest(text="400: pick two or more runs: /compare?run=A&run=B\n")
        return states

    def compare_sections(self, states: list[RunState]) -> str:
        from ..runfolder import run_labels

        runs = [s.run for s in states if s.run is not None]
        labels = run_labels(runs) if len(runs) == len(states) else [s.id for s in states]
        evals = [(i, s) for i, s in enumerate(states) if s.run is not None and s.run.kind == "eval"]
        perfs = [s for s in states if s.run is not None and s.run.kind == "perf"]
        ctx: dict[str, Any] = {"runs": [{"label": labels[i], "color": views.color(i), "s": s.summary(self.index)}
                                        for i, s in enumerate(states)], "scores": None, "paired": [], "perf": None,
                               "perf_compare": None}
        if len(evals) >= 2:
            ctx["scores"] = views.compare_scores([labels[i] for i, _ in evals], [s.live_results()[0] for _, s in evals])
            a = evals[0]
            run_a = views.with_index(a[1].run, a[1].open_journal())
            for i, b in evals[1:]:
                run_b = views.with_index(b.run, b.open_journal())
                ctx["paired"].append({"a": labels[a[0]], "b": labels[i], "color_a": views.color(a[0]),
                                      "color_b": views.color(i), **views.paired_view(run_a, run_b)})
        if perfs:
            prs = [PerfRun(labels[states.index(s)], views.color(states.index(s)), s.run, s.id) for s in perfs]
            ctx["perf"] = perf_view(prs, with_timelines=False)
            if len(perfs) == 2:  # B/A per shared level with CIs (lmgauge compare PERF_A PERF_B)
                ctx["perf_compare"] = {**self.perf_compare(perfs[0], perfs[1]), "label_a": prs[0].label,
                                       "label_b": prs[1].label, "color_a": prs[0].color, "color_b": prs[1].color}
        return render("parts/compare.html.j2", **ctx)

    def perf_compare(self, a: RunState, b: RunState) -> dict[str, Any]:
        """lmgauge compare of two perf runs as data (lmgauge.perf.compare.perf_compare_view),
        kept per pair until either run changes: its bootstrap reads both perf.sqlite files,
        and a page asks again on every live update. Runs still going are compared when they
        finish; a pair that cannot be compared gives compare's one-line reason."""
        if RUNNING in (a.status, b.status):
            return {"error": None, "pending": True}
        key = (a.id, a.version, b.id, b.version)
        with self._perf_compare_lock:
            if key in self._perf_compare:
                self._perf_compare.move_to_end(key)
                return self._perf_compare[key]
            busy = self._perf_compare_busy.setdefault(key, threading.Lock())
        with busy:  # one computation per pair; a second request waits for it
            with self._perf_compare_lock:
                if key in self._perf_compare:
                    return self._perf_compare[key]
            from ..perf.compare import perf_compare_view_for_runs

            try:
                value = perf_compare_view_for_runs(a.run, b.run)
            except Exception as exc:  # noqa: BLE001 - the comparison is one section; the page stays
                value = {"error": f"the perf comparison failed: {type(exc).__name__}: {exc}"}
            value.setdefault("pending", False)
            if value.get("error"):  # the folders by their ids, as everywhere on the app's pages
                for st in sorted((a, b), key=lambda st: -len(str(st.run.path))):
                    value["error"] = value["error"].replace(str(st.run.path), st.id)
            with self._perf_compare_lock:
                self._perf_compare[key] = value
                while len(self._perf_compare) > PERF_COMPARE_CACHE:
                    self._perf_compare.popitem(last=False)
                self._perf_compare_busy.pop(key, None)
        return value

    def compare_page_html(self, states: list[RunState], query: dict[str, str]) -> str:
        sections = self.compare_sections(states)
        evals = [s for s in states if s.run is not None and s.run.kind == "eval"]
        browser = None
        if len(evals) >= 2:
            for s in evals:
                s.open_journal()
            browser = {"runs": [s.id for s in evals], "labels": [r["label"] for r in self._labels(evals)],
                       "page": self.compare_page_data(evals, query), "filters": _filters_json(query),
                       "benchmarks": list(dict.fromkeys(b for s in evals for b in s.eval.benchmarks))}
        return render("compare.html.j2", title="compare · " + " vs ".join(s.id for s in states), sections=sections,
                      browser=json_block(browser) if browser else None, ids=[s.id for s in states])

    def _labels(self, states: list[RunState]) -> list[dict[str, str]]:
        from ..runfolder import run_labels

        labels = run_labels([s.run for s in states])
        return [{"label": labels[i], "color": views.color(i)} for i in range(len(states))]

    async def page_compare(self, request: web.Request) -> web.Response:
        states = self.compare_states(request)
        try:
            html = await self.run(self.compare_page_html, states, request.query)
        except BadRequest as exc:
            raise web.HTTPBadRequest(text=f"400: {exc}\n")
        return web.Response(text=html, content_type="text/html")

    async def part_compare(self, request: web.Request) -> web.Response:
        states = self.compare_states(request)
        return web.Response(text=await self.run(self.compare_sections, states), content_type="text/html")

    # -- API -----------------------------------------------------------------------------
    async def api_runs(self, request: web.Request) -> web.Response:
        runs = await self.run(self.runs_data)
        return _json({"runs": runs})

    def run_json(self, st: RunState) -> dict[str, Any]:
        run = st.run
        out: dict[str, Any] = {"run": st.summary(self.index) if st.display_kind != "sweep" else self.sweep_summary(st),
                               "config": redact(run.config) if run is not None else {}}
        if run is None:
            return out
        if run.kind == "eval":
            rows, summaries = st.live_results()
            report = run.report
            out.update(results=[r.to_dict() for r in rows], benchmarks=[b.to_dict() for b in summaries],
                       live=st.needs_journal(), repeats=st.repeats,
                       judge=report.judge if report else None, endpoints=report.endpoints if report else None,
                       collection=report.collection if report else None, regrade=report.regrade if report else None)
        elif run.kind == "perf":
            from .perfviews import metrics

            s = run.summary
            out.update(levels=[lv.to_dict() for lv in run.levels], best=s.best if s else {},
                       recommendations=s.recommendations if s else [], sla_search=s.sla_search if s else None,
                       current=s.current if s is not None and st.status == "running" else None,
                       metrics=[{"name": m.name, "key": m.summary_key, "unit": m.unit, "kind": m.kind,
                                 "higher_is_better": m.higher_is_better, "description": m.description}
                                for m in metrics()])
        else:
            out["sweep"] = run.sweep
        return redact_strings(out)

    async def api_run(self, request: web.Request) -> web.Response:
        st = self.state(request)
        return _json(await self.run(self.run_json, st))

    def sample_page(self, st: RunState, f: Filters, opts: dict[str, Any]) -> dict[str, Any]:
        journal = st.open_journal()
        entries, counts = journal.select(f, newest_first=opts["sort"] == "new")
        offset, limit = opts["offset"], opts["limit"]
        page = entries[offset:offset + limit]
        samples = []
        for rec in journal.records(page):
            if rec is None:
                continue
            samples.append(views.sample_json(rec, self.blocks(st, rec), opts["cut"]))
        return {"total": len(entries), "offset": offset, "limit": limit, "counts": counts, "samples": samples,
                "version": journal.version}

    def blocks(self, st: RunState, rec: Any) -> list[dict[str, Any]]:
        """The benchmark's own blocks for a sample (``Benchmark.sample_view``); a plugin that
        fails is one text block, never an error page."""
        bench = self.benchmark_of(st, rec.benchmark)
        if bench is None:
            return []
        try:
            return views.clean_blocks(bench.sample_view(rec))
        except Exception as exc:  # noqa: BLE001 - plugin code
            return [{"kind": "text", "title": "view failed", "text": f"{rec.benchmark}.sample_view: {type(exc).__name__}: {exc}"}]

    def benchmark_of(self, st: RunState, name: str) -> Any:
        if name in st.benchmarks:
            return st.benchmarks[name]
        bench = None
        try:
            from ..eval.runner import make_benchmark, parse_benchmark
            from ..plugins import get_manager

            pm = get_manager()
            base = name
            for spec in (st.run.config.get("benchmark") or []) if st.run is not None else []:
                alias, b, _path = parse_benchmark(str(spec))
                if alias == name:
                    base = b
            if base in pm.names("benchmarks"):
                bench = make_benchmark(pm, base, name, {})
        except Exception:  # noqa: BLE001 - no view without the plugin
            bench = None
        st.benchmarks[name] = bench
        return bench

    async def api_samples(self, request: web.Request) -> web.Response:
        st = self.state(request)
        if st.run is None or st.run.kind != "eval":
            return _json({"error": f"{st.id} is a {st.display_kind} run: it has no samples"}, 404)
        try:
            f, opts = parse_filters(request.query)
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)
        return _json(await self.run(self.sample_page, st, f, opts))

    def compare_page_data(self, states: list[RunState], query: Any) -> dict[str, Any]:
        """Questions of several eval runs, each with every run's outcome: ``right`` (every
        repeat correct), ``wrong`` (none), ``mixed``, ``error`` (every repeat failed) or
        ``missing``; ``o0=right&o1=wrong`` keeps the questions right in the first run and
        wrong in the second; ``q`` those where any run's sample holds the text."""
        f, opts = parse_filters(query)
        wanted = []
        for i in range(len(states)):
            value = query.get(f"o{i}") or ""
            outs = {x for x in value.split(",") if x}
            bad = outs - set(OUTCOMES)
            if bad:
                raise BadRequest(f"o{i}={','.join(sorted(bad))}: outcomes are {', '.join(OUTCOMES)}")
            wanted.append(outs)
        per_run: list[dict[tuple[str, str], list[Any]]] = []
        hit_keys: set[tuple[str, str]] = set()
        for st in states:
            journal = st.open_journal()
            hits = set(journal.search(f.q)) if f.q else None
            groups: dict[tuple[str, str], list[Any]] = {}
            for e in journal.ordered():
                if f.benchmark and e.benchmark not in f.benchmark:
                    continue
                if f.subset and not f.subset.intersection(e.subsets):
                    continue
                k = (e.benchmark, e.sample_id)
                groups.setdefault(k, []).append(e)
                if hits is not None and e.offset in hits:
                    hit_keys.add(k)
            per_run.append(groups)
        keys: dict[tuple[str, str], None] = {}
        for groups in per_run:
            keys.update(dict.fromkeys(groups))
        if f.q:
            keys = {k: None for k in keys if k in hit_keys}
        from .journal import natural_key

        rows = []
        for k in sorted(keys, key=lambda k: (natural_key(k[0]), natural_key(k[1]))):
            outs = [_outcome(groups.get(k)) for groups in per_run]
            if all(not w or o["outcome"] in w for w, o in zip(wanted, outs)):
                rows.append((k, outs))
        offset, limit = opts["offset"], opts["limit"]
        page = rows[offset:offset + limit]
        questions = []
        for (bench, sid), outs in page:
            text, gold = None, None
            for i, groups in enumerate(per_run):
                es = groups.get((bench, sid))
                if es:
                    rec = states[i].eval.records([es[0]])[0]
                    if rec is not None:
                        text = views.stringify(rec.question) or views.stringify(views._prompt_text(rec.prompt))
                        gold = views.stringify(rec.gold)
                        break
            questions.append({"benchmark": bench, "sample_id": sid, "question": text, "gold": gold, "runs": outs})
        return {"total": len(rows), "offset": offset, "limit": limit, "questions": questions}

    async def api_compare_samples(self, request: web.Request) -> web.Response:
        ids = [v for v in request.query.getall("run", []) if v]
        states = []
        for rid in dict.fromkeys(ids):
            st = self.index.get(rid)
            if st is None:
                return _json({"error": "no such run"}, 404)
            if st.run is None or st.run.kind != "eval":
                return _json({"error": f"{rid} is not an eval run"}, 400)
            states.append(st)
        if len(states) < 2:
            return _json({"error": "pick two or more eval runs: ?run=A&run=B"}, 400)
        try:
            return _json(await self.run(self.compare_page_data, states, request.query))
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)

    async def api_events(self, request: web.Request) -> web.StreamResponse:
        wanted = frozenset(v for v in request.query.getall("run", []) if v) or None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue(maxsize=2000)
        item = (q, wanted)
        self.subscribers.add(item)
        try:
            await resp.write(b"retry: 2000\n: connected\n\n")
            while True:
                try:
                    data = await asyncio.wait_for(q.get(), PING_S)
                except asyncio.TimeoutError:
                    await resp.write(b": ping\n\n")
                    continue
                if data is None:
                    break
                await resp.write(data)
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.subscribers.discard(item)
        return resp

    async def static(self, request: web.Request) -> web.Response:
        found = static_files().get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="404: not found\n")
        data, ctype, digest = found
        cache = "public, max-age=31536000, immutable" if request.query.get("v") == digest else "no-cache"
        return web.Response(body=data, headers={"Content-Type": ctype, "Cache-Control": cache, "ETag": f'"{digest}"'})


def trim_memory() -> None:
    """Give the heap freed after a journal's first pass (its 40 KB lines, parsed one by one)
    back to the system (glibc's malloc_trim; nothing elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def limit_arenas() -> None:
    """One malloc arena per thread fragments the heap of a threaded server: two are enough
    (glibc's mallopt M_ARENA_MAX; nothing elsewhere). Called before any thread starts."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _warm() -> None:
    """Load the plugins once, in the background (live scores need the metric plugins, sample
    views the benchmark plugins): the first live update does not wait for them."""
    try:
        from ..perf.registry import perf_metrics
        from ..plugins import get_manager

        get_manager()
        perf_metrics()
        from ..eval.metrics import confidence_interval

        confidence_interval([0.0, 1.0])  # imports scipy.stats (more than a second, once)
        confidence_interval([0.25, 0.5, 1.0])
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported where it is used
        print(f"lmgauge serve: warning: loading plugins: {type(exc).__name__}: {exc}", flush=True)


OUTCOMES = ("right", "wrong", "mixed", "error", "missing")


def _outcome(entries: list[Any] | None) -> dict[str, Any]:
    if not entries:
        return {"outcome": "missing", "statuses": [], "score": None}
    entries = sorted(entries, key=lambda e: e.repeat)
    statuses = [e.status for e in entries]
    graded = [e for e in entries if e.status != "error"]
    if not graded:
        outcome = "error"
    elif all(e.status == "correct" for e in graded):
        outcome = "right"
    elif not any(e.status == "correct" for e in graded):
        outcome = "wrong"
    else:
        outcome = "mixed"
    scores = [float(e.score) for e in graded if e.score is not None]
    return {"outcome": outcome, "statuses": statuses, "repeats": [e.repeat for e in entries],
            "score": round(sum(scores) / len(scores), 6) if scores else None}


def _many(query: Any, name: str) -> list[str]:
    out = []
    getall = getattr(query, "getall", None)
    values = getall(name, []) if getall else ([query[name]] if name in query else [])
    for v in values:
        out += [x for x in str(v).split(",") if x]
    return out


def _int(value: str | None, name: str, default: int, lo: int, hi: int | None = None) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except ValueError:
        raise BadRequest(f"{name}={value!r}: not a whole number") from None
    if n < lo or (hi is not None and n > hi):
        raise BadRequest(f"{name}={n}: must be between {lo} and {hi}" if hi is not None else f"{name}={n}: must be ≥ {lo}")
    return n


def parse_filters(query: Any) -> tuple[Filters, dict[str, Any]]:
    """The sample filters of a query string; a bad value is one 400 line."""
    status = _many(query, "status")
    bad = set(status) - set(SAMPLE_STATUSES)
    if bad:
        raise BadRequest(f"status={','.join(sorted(bad))}: statuses are {', '.join(SAMPLE_STATUSES)}")
    repeats = [_int(r, "repeat", 0, 0) for r in _many(query, "repeat")]
    correct_text = (query.get("correct") or "").lower()
    correct = {"": None, "true": True, "right": True, "1": True, "false": False, "wrong": False, "0": False}.get(correct_text, "bad")
    if correct == "bad":
        raise BadRequest(f"correct={correct_text!r}: use right or wrong (true or false)")
    sort = query.get("sort") or "id"
    if sort not in ("id", "new"):
        raise BadRequest(f"sort={sort!r}: use id or new")
    q = query.get("q") or None
    if q is not None and len(q) > 500:
        raise BadRequest("q: at most 500 characters")
    f = Filters(benchmark=_many(query, "benchmark"), subset=_many(query, "subset"), status=status, repeat=repeats,
                correct=correct, sample_id=query.get("sample_id") or None, q=q)
    opts = {"offset": _int(query.get("offset"), "offset", 0, 0), "limit": _int(query.get("limit"), "limit", PAGE_SIZE, 1, MAX_LIMIT),
            "cut": _int(query.get("cut"), "cut", 0, 0), "sort": sort}
    return f, opts


FILTER_KEYS = ("benchmark", "subset", "status", "repeat", "correct", "q", "offset", "sample_id", "sort", "limit")


def _filters_json(query: Any) -> dict[str, str]:
    out = {k: str(query.get(k)) for k in FILTER_KEYS if query.get(k)}
    for k in query:
        if len(k) <= 3 and k.startswith("o") and k[1:].isdigit() and query.get(k):
            out[k] = str(query.get(k))
    return out
