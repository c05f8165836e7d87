"""The eval runner: samples × repeats → backend (bounded concurrency, retries) → grading pool →
journal → report.

Data flow: config → benchmark.load() → Samples → prompt × repeats → backend.generate →
benchmark.score and the reasoning analytics (worker processes) → journal (append, flushed per
sample) → metrics and length analytics → report.

The run's tokenizer (:class:`RunTokenizer`) is chosen once: ``--tokenizer``, else the served
model's own (after ``backend.start()``: an in-process backend's), else cl100k_base, marked
approximate. A resumed run fills in the analytics its older samples lack (one atomic rewrite
of the journal, never a second copy). :func:`run_sweep` runs one eval per variant of a
``--sweep`` (lmgauge.eval.sweep).
"""
from __future__ import annotations

import asyncio
import copy
import datetime as dt
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..config import EvalConfig
from ..errors import BackendError, ConfigError, LmgaugeError
from ..files import atomic_write
from ..interfaces import Backend, Benchmark, Metric
from ..options import values_for
from ..plugins import PluginManager
from ..types import Completion, GenerationParams, GenerationRequest, Sample
from .collection import Collection, load_collection, sample_collection
from ..runfolder import EvalReport, JournalWriter, SampleRecord, read_samples
from ..subprocs import ignore_further_interrupts
from .grading_pool import AnalyticsSettings, GradingPool
from .judge import judge_run, report_section
from .progress import Progress
from .report import Report, build_report, render_table

ABORT_AFTER = 8  # this many fatal errors in a row, with nothing succeeding, stops the run
UNREACHABLE_MAX_DELAY = 5.0  # seconds: the backoff cap between tries while no endpoint answers


def connection_failure_bound(config: EvalConfig) -> int:
    """How many "no endpoint can be reached" failures in a row (across all requests, reset by
    any success) stop the run: ``--max-connection-failures``, default 4 × concurrency (at least
    8), about four tries per worker, a few seconds with the default backoff."""
    return config.max_connection_failures or max(8, 4 * config.concurrency)


class _EndpointsGone(Exception):
    """Raised inside the run when the bound of unreachable failures is passed: the units in
    flight are dropped unjournaled and the run stops (``EvalRun.run`` says how to resume)."""

    def __init__(self, error: BackendError):
        super().__init__(error.message)
        self.error = error


@dataclass
class Plan:
    benchmarks: dict[str, Benchmark]
    samples: list[Sample]
    planned: dict[str, int]
    collection: Collection | None = None
    metrics: list[Metric] = field(default_factory=list)


def default_output(model: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model.rsplit("/", 1)[-1])[:60] or "model"
    return str(Path("runs") / f"eval-{slug}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")


def parse_benchmark(spec: str) -> tuple[str, str, str | None]:
    """``NAME`` → (NAME, NAME, None); ``ALIAS=BASE`` → (ALIAS, BASE, None);
    ``ALIAS=BASE:PATH`` → (ALIAS, BASE, PATH): the benchmark BASE under the name ALIAS, reading
    PATH (e.g. ``algebra=custom_math:data/algebra.jsonl``)."""
    alias, sep, rest = spec.partition("=")
    alias = alias.strip()
    if not sep:
        return alias, alias, None
    base, colon, path = rest.partition(":")
    base = base.strip()
    if not alias or not base or not alias.replace("-", "_").replace(".", "_").isidentifier():
        raise ConfigError(f"--benchmark {spec!r}: cannot read it",
                          "use NAME, or ALIAS=BENCHMARK[:PATH] with a plain alias, e.g. algebra=custom_math:algebra.jsonl")
    return alias, base, (path.strip() or None) if colon else None


def make_benchmark(pm: PluginManager, base: str, alias: str, options: dict[str, Any]) -> Benchmark:
    """The benchmark object a run uses: a copy of the registered one (a class is
    instantiated), named ``alias``, with the values of its declared options in ``options``."""
    obj = pm.get("benchmarks", base)
    bench = obj() if isinstance(obj, type) else copy.copy(obj)
    if alias != bench.name:
        bench.name = alias
    bench.options = values_for(bench, options)
    from .sandboxing import attach_sandbox  # benchmarks that run model code get the run's sandbox

    attach_sandbox(pm, bench, options)
    return bench


def make_metric(pm: PluginManager, name: str, options: dict[str, Any]) -> Metric:
    obj = pm.get("metrics", name)
    metric = obj() if isinstance(obj, type) else copy.copy(obj)
    metric.options = values_for(metric, options)
    return metric


def plan_run(config: EvalConfig, pm: PluginManager) -> Plan:
    collection = load_collection(config.collection) if config.collection else None
    names: list[str] = []
    bases: dict[str, str] = {}
    paths: dict[str, str] = {}
    for spec in config.benchmark:
        alias, base, path = parse_benchmark(spec)
        if alias in bases:
            raise ConfigError(f"--benchmark {alias} is given twice", "give each benchmark (or alias) once")
        names.append(alias)
        bases[alias] = base
        if path:
            paths[alias] = path
    for key, path in config.dataset_path.items():
        if key in paths and paths[key] != path:
            raise ConfigError(f"two files for benchmark {key}: {paths[key]} and {path}",
                              "give the file once, in --benchmark ALIAS=BASE:PATH or in --dataset-path")
        paths[key] = path
    if collection is not None:
        for e in collection.entries:
            if e.name not in names:
                names.append(e.name)
                bases[e.name] = e.name
            if e.dataset_path and e.name not in paths:
                paths[e.name] = e.dataset_path
    benches = {n: make_benchmark(pm, bases[n], n, config.options) for n in names}
    for key in paths:
        if key not in benches:
            raise ConfigError(f"--dataset-path names {key!r}, which is not a benchmark of this run",
                              f"benchmarks of this run: {', '.join(names)}")
    pools: dict[str, list[Sample]] = {}
    for n, b in benches.items():
        loaded = b.load(paths.get(n))
        if not loaded:
            raise LmgaugeError(f"benchmark {n} loaded no questions", "check --dataset-path")
        seen: set[str] = set()
        for s in loaded:
            if s.id in seen:
                raise LmgaugeError(f"benchmark {n} has two questions with id {s.id!r}",
                                   "every question needs a unique id")
            seen.add(s.id)
        pools[n] = loaded
    if collection is not None:
        picked = sample_collection(collection, {e.name: pools[e.name] for e in collection.entries})
        pools.update(picked)
    samples: list[Sample] = []
    planned = {}
    for n in names:
        chosen = pools[n][: config.limit] if config.limit else pools[n]
        samples.extend(chosen)
        planned[n] = len(chosen)
    return Plan(benches, samples, planned, collection, plan_metrics(config, pm))


def plan_metrics(config: EvalConfig, pm: PluginManager) -> list[Metric]:
    """The run's metrics (``--metric``, else every default one), with their option values, in a
    stable order: the built-in three first, then the rest by name."""
    names = config.metric or [m for m in pm.names("metrics") if pm.get("metrics", m).default]
    order = {"AveragePass@1": 0, "pass@k": 1, "maj@k": 2}
    return sorted((make_metric(pm, m, config.options) for m in names), key=lambda m: (order.get(m.name, 9), m.name))


def _messages(sample: Sample, system_prompt: str | None) -> list[dict[str, str]]:
    if isinstance(sample.prompt, list):
        msgs = list(sample.prompt)
    else:
        msgs = [{"role": "user", "content": sample.prompt}]
    if system_prompt and not any(m.get("role") == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


class RunTokenizer:
    """The tokenizer a run (or every variant of a sweep) counts with, chosen once
    (:func:`lmgauge.eval.lengths.choose_tokenizer`), and the copy its grading workers load
    (:func:`lmgauge.eval.lengths.worker_spec`: a slow-loading tokenizer is saved once into a
    temporary folder, removed by :meth:`close`)."""

    def __init__(self) -> None:
        self.counter: Any = None
        self._settings: AnalyticsSettings | None = None
        self._tmp: str | None = None

    def choose(self, config: EvalConfig, backend: Any = None) -> Any:
        if self.counter is None:
            from .lengths import choose_tokenizer

            self.counter = choose_tokenizer(config.tokenizer, config.model, backend)
        return self.counter

    def settings(self, config: EvalConfig, backend: Any = None) -> AnalyticsSettings:
        """What the grading workers measure with (the tokenizer chosen now if not yet)."""
        if self._settings is None:
            from .lengths import worker_spec

            counter = self.choose(config, backend)
            self._tmp = tempfile.mkdtemp(prefix="lmgauge-tokenizer-")
            self._settings = AnalyticsSettings(worker_spec(counter, self._tmp), counter.source)
        return self._settings

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _jsonable(value: Any) -> Any:
    try:
        orjson.dumps(value)
        return value
    except TypeError:
        return str(value)


class EvalRun:
    def __init__(self, config: EvalConfig, pm: PluginManager, out: Path, plan: Plan,
                 tokenizer: RunTokenizer | None = None):
        self.config = config
        self.pm = pm
        self.out = out
        self.plan = plan
        self.tokenizer = tokenizer or RunTokenizer()
        self.filled = 0  # older samples given their analytics by this session (a resumed run)
        self.stale: set[tuple[str, str, int]] = set()  # journaled samples without the analytics
        self.journal: JournalWriter | None = None
        self.progress: Progress | None = None
        self.fatal_streak = 0
        self.first_fatal: BackendError | None = None
        self.succeeded = 0
        self.unreachable_streak = 0  # "no endpoint can be reached" failures in a row, all workers together
        self.unreachable_bound = connection_failure_bound(config)
        self.endpoint_stats: list[dict[str, Any]] = []

    # -- one unit of work: one request for one question (n repeats, or one repeat) ------
    async def _request(self, backend: Backend, sample: Sample, n: int, seed: int | None) -> tuple[list[Completion], int, float]:
        c = self.config
        params = GenerationParams(max_tokens=c.max_tokens, temperature=c.temperature, top_p=c.top_p,
                                  seed=seed, n=n, extra_body=dict(c.extra_body))
        prompt = sample.prompt if isinstance(sample.prompt, str) else None
        req = GenerationRequest(messages=_messages(sample, c.system_prompt), prompt=prompt, params=params,
                                id=f"{sample.benchmark}/{sample.id}")
        try:
            backend.check_request(req)  # the endpoint kind says what it can send (e.g. no chat messages as a prompt)
        except ConfigError as exc:
            raise ConfigError(f"benchmark {sample.benchmark}: {exc.message}", exc.hint) from None
        attempt = unreachable = 0
        while True:
            attempt += 1
            t0 = time.perf_counter()
            try:
                comps = await backend.generate(req)
                self.unreachable_streak = 0
                return comps, attempt, time.perf_counter() - t0
            except BackendError as exc:
                cap = 60.0
                if exc.unavailable:  # no endpoint answers: not this request's fault
                    unreachable += 1
                    self.unreachable_streak += 1
                    if self.unreachable_streak >= self.unreachable_bound:
                        raise _EndpointsGone(exc) from None
                    if unreachable > self.unreachable_bound:  # others get through, this one never does
                        raise
                    cap = UNREACHABLE_MAX_DELAY
                elif not exc.retryable or attempt - unreachable > c.retries:
                    raise
                delay = min(cap, c.retry_backoff * 2 ** (attempt - 1)) * (0.5 + random.random())
                await asyncio.sleep(delay)

    async def _unit(self, backend: Backend, grader: GradingPool, sample: Sample, repeats: list[int]) -> None:
        c = self.config
        bench = self.plan.benchmarks[sample.benchmark]
        seed = None if c.seed is None else c.seed + (repeats[0] if len(repeats) == 1 else 0)
        base = dict(benchmark=sample.benchmark, sample_id=sample.id, subsets=list(sample.subsets),
                    question=sample.question, prompt=_jsonable(sample.prompt), gold=_jsonable(sample.gold))
        try:
            comps, attempts, latency = await self._request(backend, sample, len(repeats), seed)
            if len(comps) < len(repeats):
                raise BackendError(f"backend returned {len(comps)} completions, {len(repeats)} asked")
        except BackendError as exc:
            self._fatal(exc)
            for r in repeats:
                self._write(SampleRecord(**base, repeat=r, error=exc.line(), attempts=getattr(exc, "attempts", None)))
            return
        self.fatal_streak = 0
        self.succeeded += 1
        graded = await asyncio.gather(*(grader.assess(bench, sample, comp) for comp in comps[: len(repeats)]))
        for r, comp, (score, found) in zip(repeats, comps, graded):
            rec = SampleRecord(**base, repeat=r, response=comp.text, reasoning=comp.reasoning,
                               finish_reason=comp.finish_reason, truncated=comp.finish_reason == "length",
                               prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens,
                               latency_s=round(latency, 4), attempts=attempts).with_score(score)
            if found is None and not rec.failed:
                self.stale.add(rec.key)  # measured later (at the end of this session, or by --resume)
            self._write(found.apply(rec) if found is not None else rec)

    def _fatal(self, exc: BackendError) -> None:
        if exc.retryable:
            return
        self.fatal_streak += 1
        self.first_fatal = self.first_fatal or exc
        if self.succeeded == 0 and self.fatal_streak >= ABORT_AFTER:
            raise BackendError(f"every request fails: {exc.line()}",
                               "fix the settings; the failed samples are journaled and re-run by --resume")

    def _write(self, record: SampleRecord) -> None:
        assert self.journal is not None
        self.journal.append(record)
        if self.progress is not None:
            self.progress.update(record)

    # -- the whole run -----------------------------------------------------------------
    async def _fill(self, grader: GradingPool | None, backend: Any = None) -> None:
        """Give the journaled samples that lack them (written by an older lmgauge, or their
        analysis failed; with a ``--tokenizer`` given now, also those counted approximately)
        their token counts, reflections and first-correct, measured in the grading pool, and
        rewrite the journal once, atomically (the latest line per sample; nothing appended)."""
        from ..runfolder import write_samples
        from .lengths import needs_analysis
        from .grading_pool import completion_of, sample_of

        if not self.stale:
            return  # nothing without the analytics: no second read of the journal
        path = self.out / "samples.jsonl"
        upgrade = bool(self.config.tokenizer)
        stale = [r for r in read_samples(path) if r.key in self.stale and needs_analysis(r, upgrade)
                 and r.benchmark in self.plan.benchmarks]
        if not stale:
            return
        own = grader is None
        if own:
            grader = GradingPool(self.config.grading_workers, self.config.starts_thinking)
            grader.start()
        try:
            grader.analytics = self.tokenizer.settings(self.config, backend)
            found = await asyncio.gather(*(grader.analyze(self.plan.benchmarks[r.benchmark], sample_of(r),
                                                          completion_of(r)) for r in stale))
        finally:
            if own:
                grader.close()
        filled = {r.key: f.apply(r) for r, f in zip(stale, found) if f is not None}
        if not filled:
            return
        write_samples(path, (filled.get(r.key, r) for r in read_samples(path)))
        self.filled = len(filled)

    async def run(self) -> Report:
        c = self.config
        started = time.time()
        from .lengths import needs_analysis

        done = set()
        for r in read_samples(self.out / "samples.jsonl"):  # one read: what is done, what lacks the analytics
            if not r.failed:
                done.add(r.key)
                if needs_analysis(r, bool(c.tokenizer)):
                    self.stale.add(r.key)
        todo: list[tuple[Sample, list[int]]] = []
        for s in self.plan.samples:
            missing = [r for r in range(c.repeats) if (s.benchmark, s.id, r) not in done]
            if missing:
                todo.append((s, missing))
        total = len(self.plan.samples) * c.repeats
        interrupted = False
        gone: _EndpointsGone | None = None
        self.request_phase_s = 0.0
        if todo:
            backend = make_backend(self.pm, c)
            grader = GradingPool(c.grading_workers, c.starts_thinking)
            grader.start()
            self.journal = JournalWriter(self.out / "samples.jsonl")
            try:
                await backend.start()
                grader.analytics = self.tokenizer.settings(c, backend)  # the served model's tokenizer, if it has one
                if c.repeats > 1:
                    await backend.detect_n_support()
                units: list[tuple[Sample, list[int]]] = []
                for s, missing in todo:
                    if backend.supports_n:
                        units.append((s, missing))
                    else:
                        units.extend((s, [r]) for r in missing)
                self.progress = Progress(total, already=total - sum(len(m) for _, m in todo),
                                         enabled=c.progress)
                queue: asyncio.Queue = asyncio.Queue()
                for u in units:
                    queue.put_nowait(u)

                async def worker() -> None:
                    while True:
                        try:
                            s, reps = queue.get_nowait()
                        except asyncio.QueueEmpty:
                            return
                        await self._unit(backend, grader, s, reps)

                workers = [asyncio.ensure_future(worker()) for _ in range(min(c.concurrency, len(units)))]
                phase_start = time.perf_counter()
                try:
                    await asyncio.gather(*workers)
                    self.request_phase_s = time.perf_counter() - phase_start
                except BaseException:
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                    raise
                self.journal.close()
                await self._fill(grader, backend)  # older samples of a resumed run
            except (asyncio.CancelledError, KeyboardInterrupt):
                ignore_further_interrupts()
                interrupted = True
            except _EndpointsGone as exc:
                gone = exc
            finally:
                if self.progress is not None:
                    self.progress.render(final=True)
                self.journal.close()
                grader.close()
                self.endpoint_stats = backend.endpoint_stats()
                await backend.close()
        else:
            try:
                await self._fill(None)  # a finished run resumed: only the analytics its samples lack
            except (asyncio.CancelledError, KeyboardInterrupt):
                ignore_further_interrupts()
                interrupted = True
        if gone is not None:
            report = self.finish(started, complete=False)
            done = sum(b.graded for b in report.benchmarks)
            raise BackendError(f"every endpoint is unreachable (last: {gone.error.message}); {done} samples done, "
                               f"{total - done} not run; continue with: lmgauge eval --resume {self.out}")
        if not interrupted:
            try:
                self.judge_summary = await judge_run(self.out, c, self.plan.benchmarks, self.pm)
            except (asyncio.CancelledError, KeyboardInterrupt):
                ignore_further_interrupts()
                interrupted = True
        report = self.finish(started, complete=not interrupted)
        if interrupted:
            raise KeyboardInterrupt
        return report

    def records(self):
        """The latest record of every planned sample, read one at a time."""
        wanted = {(s.benchmark, s.id) for s in self.plan.samples}
        repeats = self.config.repeats
        return (r for r in read_samples(self.out / "samples.jsonl")
                if (r.benchmark, r.sample_id) in wanted and r.repeat < repeats)

    def finish(self, started: float, complete: bool = True) -> Report:
        c = self.config
        spec = self.plan.collection.spec if self.plan.collection else None
        prev = previous_report(self.out)
        report = build_report(
            self.records(), config=c, metrics=self.plan.metrics, planned=self.plan.planned, spec=spec,
            complete=complete, elapsed_s=round(float((prev.elapsed_s if prev else None) or 0.0) + time.time() - started, 3),
            request_phase_s=round(getattr(self, "request_phase_s", 0.0), 3),
            collection=self.plan.collection.to_dict() if self.plan.collection is not None else None,
            judge=report_section(self.records(), c, getattr(self, "judge_summary", None)),
            endpoints=merge_endpoint_stats((prev.endpoints if prev else None) or [], self.endpoint_stats) or None)
        atomic_write(self.out / "report.json", orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
        return report


def previous_report(out: Path) -> EvalReport | None:
    """The report an earlier session of this run wrote (a resume adds to its elapsed time and
    endpoint counts), or None."""
    rp = out / "report.json"
    try:
        return EvalReport.from_dict(orjson.loads(rp.read_bytes())) if rp.exists() else None
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None


def merge_endpoint_stats(before: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-endpoint counts over every session of a run (a resumed run adds to the saved ones),
    by URL, in the order the endpoints first appeared."""
    merged = {e["url"]: dict(e) for e in before}
    for e in now:
        old = merged.get(e["url"])
        if old is None:
            merged[e["url"]] = dict(e)
            continue
        ok = (old.get("ok") or 0) + (e.get("ok") or 0)
        means = [(m, n) for m, n in ((old.get("latency_mean_s"), old.get("ok")), (e.get("latency_mean_s"), e.get("ok")))
                 if m is not None and n]
        maxes = [x for x in (old.get("latency_max_s"), e.get("latency_max_s")) if x is not None]
        old.update({key: (old.get(key) or 0) + (e.get(key) or 0) for key in ("requests", "ok", "failures", "parked")},
                   parked_s=round((old.get("parked_s") or 0.0) + (e.get("parked_s") or 0.0), 3),
                   latency_mean_s=round(sum(m * n for m, n in means) / ok, 4) if means else None,
                   latency_max_s=max(maxes) if maxes else None, last_error=e.get("last_error") or old.get("last_error"))
    return list(merged.values())


def make_backend(pm: PluginManager, c: EvalConfig) -> Backend:
    """The run's backend: the plugin named by ``--backend`` (or the installed default), with the
    values of its own options; ``--replicas N`` wraps it in Ray actors."""
    from ..runsetup import make_backend as build

    return build(pm, c.backend, model=c.model, urls=list(c.base_url), api_key=c.api_key, api=c.api,
                 connect_timeout=c.connect_timeout, read_timeout=c.timeout, options=c.options, replicas=c.replicas,
                 gpus_per_replica=c.gpus_per_replica, ray_address=c.ray_address)


def prepare_output(config: EvalConfig, **manifest: Any):
    """The run folder, owned (lock, run.json, config.yaml): ``--resume DIR`` or ``--output``
    (default runs/eval-MODEL-TIME). ``manifest``: more fields of a new run.json (a sweep
    variant's ``sweep`` and ``values``). Returns (folder, lock)."""
    from ..runsetup import create_folder

    out = Path(config.resume or config.output or default_output(config.model))
    saved = config.to_dict()
    saved.pop("resume", None)
    saved["output"] = str(out)
    if config.resume:  # the folder as the run first named it, wherever it is resumed from
        from ..runfolder import RunConfig

        saved["output"] = RunConfig.read(out).values.get("output") or str(out)
    return out, create_folder(out, "eval", saved, resume=bool(config.resume), **manifest)


def run_eval(config: EvalConfig, pm: PluginManager, *, tokenizer: RunTokenizer | None = None,
             plan: Plan | None = None, manifest: dict[str, Any] | None = None) -> tuple[Report, Path]:
    """Plan, run (or resume) and report. Raises KeyboardInterrupt after saving on Ctrl-C.
    ``tokenizer``, ``plan``, ``manifest``: what the variants of a sweep share (the tokenizer
    chosen once, the questions planned once) and what each variant's run.json adds."""
    from .judge import check_judge

    from ..runsetup import check_exporters

    if not config.resume and not config.output:
        config.output = default_output(config.model)  # named now: a Ctrl-C message can say where
    check_exporters(config.export, pm)  # an unknown exporter fails now, not after the run
    plan = plan or plan_run(config, pm)
    check_judge(config, pm)  # an unknown judge backend fails before any request
    own = tokenizer is None
    tokenizer = tokenizer or RunTokenizer()
    try:
        if config.tokenizer:
            tokenizer.choose(config)  # a bad --tokenizer is one line before the folder is made
        out, lock = prepare_output(config, planned=dict(plan.planned), repeats=config.repeats, **(manifest or {}))
        try:
            if plan.collection is not None:
                (out / "collection.json").write_bytes(orjson.dumps(plan.collection.to_dict(),
                                                                   option=orjson.OPT_INDENT_2))
            run = EvalRun(config, pm, out, plan, tokenizer)
            report = asyncio.run(run.run())
        finally:
            lock.release()
    finally:
        if own:
            tokenizer.close()
    return report, out


@dataclass
class SweepOutcome:
    """A finished sweep: its folder, its ``sweep.json`` document and each variant's report."""

    out: Path
    doc: dict[str, Any]
    variants: list[tuple[Any, Path, Report]] = field(default_factory=list)


def run_sweep(config: EvalConfig, pm: PluginManager, finish: Any = None, echo: Any = None) -> SweepOutcome:
    """Run every variant of ``config.sweep`` (lmgauge.eval.sweep) into ``--output DIR`` (or
    ``--resume DIR``): the questions are planned once, the tokenizer chosen once, each variant
    is an ordinary eval run in ``DIR/KEY=V/`` (resumed where it holds one of the same
    settings), then ``DIR/sweep.json`` is written. A folder holding a sweep of other settings is
    refused in one line. ``finish(variant_dir, variant_config)`` runs after each variant (the
    CLI writes its report.html and exports); ``echo`` gets one line per variant as it starts.
    On Ctrl-C the variants done so far are summarized, then KeyboardInterrupt is raised."""
    from ..config import differing_setting
    from ..runfolder import RunConfig, kind_of
    from ..runsetup import check_exporters, create_folder
    from .judge import check_judge
    from .sweep import is_sweep, parse_sweeps, summarize, variant_settings, variants, write_summary

    keys = parse_sweeps(config.sweep, config)
    if not config.resume and not config.output:
        config.output = default_output(config.model)
    root = Path(config.resume or config.output)
    check_exporters(config.export, pm)
    plan = plan_run(config, pm)
    check_judge(config, pm)
    plan_v = variants(keys)
    settings = [variant_settings(config, v, root) for v in plan_v]  # a bad value fails now, for every variant
    saved = config.to_dict()
    saved.pop("resume", None)
    saved["output"] = str(root)
    resuming = is_sweep(root)
    if resuming:
        diff = differing_setting(RunConfig.read(root).values, saved)
        if diff is not None:
            key, had, now = diff
            raise ConfigError(f"--output {root} holds a sweep with other settings ({key}: {had!r} there, {now!r} now)",
                              "repeat that sweep's own command to continue it, or pass a new --output")
    elif config.resume:
        raise ConfigError(f"--resume {root} with --sweep: that folder holds no sweep",
                          "pass the folder of an earlier `lmgauge eval ... --sweep`, or drop --sweep")
    for v, vcfg in zip(plan_v, settings):  # variant folders already there must be this sweep's own
        vdir = root / v.name
        if kind_of(vdir)[0] == "eval":
            diff = differing_setting(RunConfig.read(vdir).values, vcfg.to_dict())
            if diff is not None:
                key, had, now = diff
                raise ConfigError(f"{vdir} holds a run with other settings ({key}: {had!r} there, {now!r} now)",
                                  "pass a new --output for this sweep")
            vcfg.resume = str(vdir)
    tokenizer = RunTokenizer()
    lock = create_folder(root, "sweep", saved, resume=resuming)
    outcome = SweepOutcome(root, {})
    try:
        if config.tokenizer:
            tokenizer.choose(config)
        for i, (v, vcfg) in enumerate(zip(plan_v, settings)):
            vdir = root / v.name
            if echo is not None:
                echo(f"sweep variant {i + 1} of {len(plan_v)}: {v.label} ({vdir})")
            try:
                report, _ = run_eval(vcfg, pm, tokenizer=tokenizer, plan=plan,
                                     manifest={"sweep": "..", "values": dict(v.values)})
            except BaseException:
                try:  # what was done so far, summarized (no_effect stays undecided)
                    write_summary(root, summarize(root, keys))
                except Exception:  # noqa: BLE001 - the variants' own folders hold everything
                    pass
                raise
            outcome.variants.append((v, vdir, report))
            if finish is not None:
                finish(vdir, vcfg)
        outcome.doc = summarize(root, keys)
        write_summary(root, outcome.doc)
    finally:
        tokenizer.close()
        lock.release()
    return outcome


def endpoint_table(endpoints: list[dict[str, Any]]) -> str:
    """The terminal table of per-endpoint counts (several ``--base-url``)."""
    from ..texttable import grid_table

    def secs(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    rows = [[e["url"], str(e.get("requests", 0)), str(e.get("ok", 0)), str(e.get("failures", 0)),
             str(e.get("parked", 0)), secs(e.get("latency_mean_s")), secs(e.get("latency_max_s"))] for e in endpoints]
    return grid_table(["Endpoint", "Requests", "OK", "Failures", "Parked", "Mean s", "Max s"], rows,
                      right={1, 2, 3, 4, 5, 6})


def print_report(report: Report, out: Path, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(render_table(report) + "\n")
    if len(report.endpoints or []) > 1:
        stream.write(endpoint_table(report.endpoints) + "\n")
    if report.judge is not None:
        from .judge import agreement_line

        stream.write(agreement_line(report.judge) + "\n")
    stream.write(f"run folder: {out}\n")
