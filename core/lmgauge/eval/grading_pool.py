"""Grading in worker processes.

Benchmarks' ``score`` may use SIGALRM (math-verify does), which works only in a process's main
thread, so grading runs in a pool of spawned worker processes. Completions are sent in batches
(one pickle and one round trip per batch, not per sample) so grading keeps up with fast servers.

A failure of the grading machinery is never a verdict: a benchmark whose ``score`` raises, a
worker process that dies, a benchmark that cannot be sent to the workers give
:meth:`lmgauge.types.Score.grader_error` (status ``error``: counted apart, not scored, graded
again by ``lmgauge regrade``). Workers start without importing the caller's ``__main__``
script again, so ``lmgauge.evaluate(...)`` at a script's top level (no ``if __name__ ==
"__main__":``) grades as it does under the guard.

With :attr:`GradingPool.analytics` set, a worker also measures how the model reasoned, right
after ``score`` and in its own ``try`` (a failure there never costs the verdict):
:func:`lmgauge.eval.lengths.analyze` gives token counts, reflections and first-correct
(:meth:`GradingPool.assess`; :meth:`GradingPool.analyze` measures without grading, for a
resumed run's older samples). Benchmarks that run code in a sandbox (``needs_sandbox``) are
sent one sample per batch, so a slow execution does not hold back the journal lines of a
whole batch, and get no first-correct search (their answers are programs, not values).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Iterator

from ..subprocs import exit_with_parent
from ..types import Completion, Sample, Score

BATCH = 64
#: what a queued item asks for: the verdict only, the verdict and the analytics, the analytics only
GRADE, ASSESS, ANALYZE = "grade", "assess", "analyze"


@dataclass(frozen=True)
class AnalyticsSettings:
    """What a worker measures besides the verdict. ``tokenizer``: the spec each worker loads the
    run's tokenizer from, once per process (:func:`lmgauge.eval.lengths.worker_tokenizer`;
    None: no token counts); ``source``: the counts' ``token_source`` (``tokenizer`` or
    ``approximate``)."""

    tokenizer: str | None = None
    source: str = "tokenizer"


Item = tuple[Any, Sample, Completion, str]
Result = tuple["Score | None", Any]


def _score(bench: Any, sample: Sample, completion: Completion) -> Score:
    try:
        score = bench.score(sample, completion)
        if not isinstance(score, Score):
            raise TypeError(f"score() returned {type(score).__name__}, not Score")
    except Exception as exc:  # noqa: BLE001 - one bad grade must not stop the run
        score = Score.grader_error(f"grader error: {exc.__class__.__name__}: {exc}")
    return score


def _analyze(bench: Any, sample: Sample, completion: Completion, starts_thinking: bool,
             settings: AnalyticsSettings) -> Any:
    """lengths.analyze on the completion as journaled (not the graded copy); None when it
    fails: the sample keeps its verdict and gets no figures (``--resume`` fills them in)."""
    try:
        from .lengths import analyze

        searched = None if getattr(bench, "needs_sandbox", False) else bench
        return analyze(searched, sample, completion.text, completion.reasoning, tokenizer=settings.tokenizer,
                       source=settings.source, usage_tokens=completion.completion_tokens,
                       starts_thinking=starts_thinking)
    except Exception:  # noqa: BLE001 - analytics never cost a verdict
        return None


def _work_batch(items: list[Item], starts_thinking: bool = False,
                analytics: AnalyticsSettings | None = None) -> list[Result]:
    """(score, analytics) per item: the benchmark's verdict on the completion as graded
    (:func:`as_graded`), then, when asked and set up, the analytics on the texts as journaled."""
    out: list[Result] = []
    for bench, sample, completion, mode in items:
        score = None if mode == ANALYZE else _score(bench, sample, as_graded(completion, starts_thinking))
        found = None
        if mode != GRADE and analytics is not None:
            found = _analyze(bench, sample, completion, starts_thinking, analytics)
        out.append((score, found))
    return out


def _grade_batch(items: list[tuple[Any, Sample, Completion]]) -> list[Score]:
    """Verdicts only, of completions already as graded (the batch of earlier versions)."""
    return [_score(bench, sample, completion) for bench, sample, completion in items]


def _warm() -> int:
    return os.getpid()


def _init_worker() -> None:
    """A grading process leaves with its parent and imports the one-off plugin files, so that
    benchmarks defined in them unpickle."""
    from ..plugins import import_plugin_files

    exit_with_parent()
    import_plugin_files()


def as_graded(completion: Completion, starts_thinking: bool) -> Completion:
    """The completion a benchmark grades. With ``--starts-thinking`` the chat template opened
    ``<think>`` in the prompt (DeepSeek-R1 style), so the response begins inside its thinking:
    it gets the opening tag back, and a response cut off before ``</think>`` has no answer (a
    box inside unfinished thinking never counts)."""
    if not starts_thinking or "<think" in (completion.text or "")[:200].lower():
        return completion
    return replace(completion, text="<think>" + (completion.text or ""))


def sample_of(rec: Any) -> Sample:
    """The question of a journaled :class:`lmgauge.runfolder.SampleRecord`, rebuilt from the
    record (benchmark, id, prompt, gold, subsets, question: the dataset is never reloaded)."""
    return Sample(id=rec.sample_id, benchmark=rec.benchmark, prompt=rec.prompt or "", gold=rec.gold,
                  subsets=tuple(rec.subsets), question=rec.question or "")


def completion_of(rec: Any) -> Completion:
    """The completion of a journaled record, as the backend gave it: its texts, finish reason
    and the server's per-sample usage when it has one (a count made by a tokenizer is not
    handed back as usage)."""
    from .lengths import usage_of

    return Completion(text=rec.response or "", reasoning=rec.reasoning, finish_reason=rec.finish_reason,
                      prompt_tokens=rec.prompt_tokens, completion_tokens=usage_of(rec))


@contextlib.contextmanager
def without_main_script() -> Iterator[None]:
    """Spawned processes started inside this block do not run the caller's ``__main__``
    script again. The spawn start method re-imports it in every child (as ``__mp_main__``),
    which runs a script's top-level ``lmgauge.evaluate(...)`` once more in each worker when the
    script lacks ``if __name__ == "__main__":``; graders never need the script (benchmarks come
    from installed plugins or --plugin files, which workers import themselves)."""
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if main is not None and hasattr(main, k)}
    try:
        for k in saved:
            setattr(main, k, None)
        if "__file__" in saved:
            delattr(main, "__file__")
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


class GradingPool:
    """``starts_thinking``: see :func:`as_graded` (the run's ``--starts-thinking``);
    ``analytics``: what :meth:`assess` and :meth:`analyze` measure besides the verdict (None:
    nothing; it may be set after :meth:`start`, e.g. once the backend's tokenizer is known)."""

    def __init__(self, workers: int | None = None, starts_thinking: bool = False,
                 analytics: AnalyticsSettings | None = None):
        self.starts_thinking = starts_thinking
        self.analytics = analytics
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._scheduled = False
        self._isolating: asyncio.Lock | None = None  # one item at a time after a worker died

    def start(self) -> None:
        self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                         initializer=_init_worker)
        with without_main_script():
            warm = [self._pool.submit(_warm) for _ in range(self.workers)]  # the processes start now
        self._warm = warm

    async def grade(self, bench: Any, sample: Sample, completion: Completion) -> Score:
        """The benchmark's verdict on ``completion`` (as :func:`as_graded` hands it over)."""
        score, _ = await self._submit(bench, sample, completion, GRADE)
        return score

    async def assess(self, bench: Any, sample: Sample, completion: Completion) -> Result:
        """(verdict, :class:`lmgauge.eval.lengths.SampleAnalytics` or None): the analytics of
        ``completion`` as journaled, measured in the same worker right after the verdict
        (None when :attr:`analytics` is unset or the measuring failed)."""
        return await self._submit(bench, sample, completion, ASSESS)

    async def analyze(self, bench: Any, sample: Sample, completion: Completion) -> Any:
        """The analytics alone (an older sample of a resumed run), or None."""
        _, found = await self._submit(bench, sample, completion, ANALYZE)
        return found

    async def _submit(self, bench: Any, sample: Sample, completion: Completion, mode: str) -> Result:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append(((bench, sample, completion, mode), fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await fut

    def _dispatch(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        alone = [p for p in pending if getattr(p[0][0], "needs_sandbox", False)]
        pending = [p for p in pending if not getattr(p[0][0], "needs_sandbox", False)]
        for p in alone:  # sandboxed executions take seconds each: one per batch
            asyncio.ensure_future(self._run_batch([p]))
        for i in range(0, len(pending), BATCH):
            asyncio.ensure_future(self._run_batch(pending[i:i + BATCH]))

    def _failed(self, item: Item, detail: str) -> Result:
        return (None if item[3] == ANALYZE else Score.grader_error(detail)), None

    async def _run_batch(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        items = [item for item, _ in batch]
        try:
            results = await loop.run_in_executor(self._pool, _work_batch, items, self.starts_thinking, self.analytics)
        except BrokenProcessPool:
            # a worker died on this batch: grade its items one at a time in fresh workers, so
            # that only the samples that kill a worker are grader errors
            results = [await self._alone(item) for item in items]
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable benchmark
            results = [self._failed(item, f"grader error: {exc.__class__.__name__}: {exc}") for item in items]
        for (_, fut), result in zip(batch, results):
            if not fut.done():
                fut.set_result(result)

    async def _alone(self, item: Item) -> Result:
        """One item in a fresh worker: twice as asked, then (when the analytics were asked
        for) the verdict alone, so that measuring a sample never costs its verdict. Items are
        isolated one at a time, so that a sample that kills its worker again and again does not
        take the others' tries with it."""
        if self._isolating is None:
            self._isolating = asyncio.Lock()
        async with self._isolating:
            loop = asyncio.get_running_loop()
            tries = [item, item]
            if item[3] == ASSESS and self.analytics is not None:
                tries.append((*item[:3], GRADE))
            for attempt in tries:
                if self._broken():
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self.start()
                try:
                    return (await loop.run_in_executor(self._pool, _work_batch, [attempt], self.starts_thinking,
                                                       self.analytics))[0]
                except BrokenProcessPool:
                    continue
                except Exception as exc:  # noqa: BLE001
                    return self._failed(item, f"grader error: {exc.__class__.__name__}: {exc}")
            return self._failed(item, "grader error: worker process died")

    def _broken(self) -> bool:
        return self._pool is None or bool(getattr(self._pool, "_broken", False))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
