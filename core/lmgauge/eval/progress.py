"""The eval progress line: done/total, accuracy so far, tokens/s, ETA, errors."""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..runfolder import SampleRecord


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, already: int = 0, enabled: bool = True, stream: TextIO | None = None):
        self.total = total
        self.done = already
        self.fresh = 0
        self.scored = 0.0
        self.graded = 0
        self.errors = 0
        self.tokens = 0
        self.start = time.monotonic()
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.enabled and self.stream.isatty()
        self._last = 0.0
        self._last_pct = -1

    def update(self, rec: SampleRecord) -> None:
        self.done += 1
        self.fresh += 1
        if not rec.graded:
            self.errors += 1
        else:
            self.graded += 1
            self.scored += float(rec.score or 0.0)
        self.tokens += int(rec.completion_tokens or 0)
        self.render()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.fresh / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        acc = f"{self.scored / self.graded:.3f}" if self.graded else "-"
        tps = self.tokens / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta_s = _hms(eta) if eta == eta else "?"
        err = f" | errors {self.errors}" if self.errors else ""
        return (f"eval {self.done}/{self.total} ({pct:.0f}%) | acc {acc} | {tps:.0f} tok/s | "
                f"{rate:.1f} samples/s | ETA {eta_s}{err}")

    def render(self, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if final or now - self._last >= 0.2:
                self.stream.write("\r\033[K" + self.line() + ("\n" if final else ""))
                self.stream.flush()
                self._last = now
            return
        pct = int(10 * self.done / self.total) if self.total else 10
        if final or pct != self._last_pct and now - self._last >= 2.0 or now - self._last >= 30:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last, self._last_pct = now, pct
