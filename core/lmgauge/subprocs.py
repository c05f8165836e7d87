"""Helpers for lmgauge's worker processes (grading pool, perf ``--workers``)."""
from __future__ import annotations

import os
import threading
import time


def exit_with_parent() -> None:
    """Call first thing in a worker process: it leaves as soon as the process that started it
    is gone. Without this a SIGKILLed (or OOM-killed) run leaves its workers behind: a pool
    worker blocked on its task queue never sees EOF (it holds the queue's pipe ends itself), and
    a perf worker would go on loading the server."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="lmgauge-parent-watch", daemon=True).start()


def ignore_further_interrupts() -> None:
    """After a Ctrl-C, while lmgauge saves what was measured (journal, report, connections
    closed): a second Ctrl-C is ignored instead of breaking the save half-way (an unclosed
    session, a traceback from an exit handler). A third party that must stop it now has
    SIGTERM / SIGKILL; what finished is already on disk."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to do
        pass
