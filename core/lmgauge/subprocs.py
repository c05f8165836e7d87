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
