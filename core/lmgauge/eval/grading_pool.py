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
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Iterator

from ..subprocs import exit_with_parent
from ..types import Completion, Sample, Score

BATCH = 64


def _grade_batch(items: list[tuple[Any, Sample, Completion]]) -> list[Score]:
    out = []
    for bench, sample, completion in items:
        try:
            score = bench.score(sample, completion)
            if not isinstance(score, Score):
                raise TypeError(f"score() returned {type(score).__name__}, not Score")
        except Exception as exc:  # noqa: BLE001 - one bad grade must not stop the run
            score = Score.grader_error(f"grader error: {exc.__class__.__name__}: {exc}")
        out.append(score)
    return out


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
    """``starts_thinking``: see :func:`as_graded` (the run's ``--starts-thinking``)."""

    def __init__(self, workers: int | None = None, starts_thinking: bool = False):
        self.starts_thinking = starts_thinking
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[tuple[Any, Sample, Completion], asyncio.Future]] = []
        self._scheduled = False

    def start(self) -> None:
        self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                         initializer=_init_worker)
        with without_main_script():
            warm = [self._pool.submit(_warm) for _ in range(self.workers)]  # the processes start now
        self._warm = warm

    async def grade(self, bench: Any, sample: Sample, completion: Completion) -> Score:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append(((bench, sample, as_graded(completion, self.starts_thinking)), fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await fut

    def _dispatch(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), BATCH):
            asyncio.ensure_future(self._run_batch(pending[i:i + BATCH]))

    async def _run_batch(self, batch: list[tuple[tuple[Any, Sample, Completion], asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        items = [item for item, _ in batch]
        try:
            scores = await loop.run_in_executor(self._pool, _grade_batch, items)
        except BrokenProcessPool:
            # a worker died on this batch: grade its items one at a time in fresh workers, so
            # that only the samples that kill a worker are grader errors
            scores = [await self._alone(item) for item in items]
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable benchmark
            scores = [Score.grader_error(f"grader error: {exc.__class__.__name__}: {exc}")] * len(items)
        for (_, fut), score in zip(batch, scores):
            if not fut.done():
                fut.set_result(score)

    async def _alone(self, item: tuple[Any, Sample, Completion]) -> Score:
        loop = asyncio.get_running_loop()
        for _attempt in range(2):
            if self._broken():
                self._pool.shutdown(wait=False, cancel_futures=True)
                self.start()
            try:
                return (await loop.run_in_executor(self._pool, _grade_batch, [item]))[0]
            except BrokenProcessPool:
                continue
            except Exception as exc:  # noqa: BLE001
                return Score.grader_error(f"grader error: {exc.__class__.__name__}: {exc}")
        return Score.grader_error("grader error: worker process died")

    def _broken(self) -> bool:
        return self._pool is None or bool(getattr(self._pool, "_broken", False))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
