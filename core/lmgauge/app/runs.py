"""The runs under the served folders: found recursively, followed while they change.

:class:`RunIndex` walks the served folders (each folder's listing is read again only when
its mtime changed, so a tick costs a few stats per folder) and keeps one :class:`RunState`
per run folder that :func:`lmgauge.runfolder.kind_of` recognises: eval, regrade, perf and
sweep folders of every schema version. A run's id is ``ROOT/RELATIVE/PATH`` (ROOT: the
served folder's name, made unique): ids only ever name folders found by the walk, so no
request can name a path of its own. Symlinked folders are not followed; a run folder whose
files link outside the served folder is skipped.

:meth:`RunState.refresh` re-reads what changed: run.json, report.json, summary.json,
config.yaml (by size/mtime), the writer's lock (``holder``), and the journal's appended
bytes. Nothing is ever written into a run folder.
"""
from __future__ import annotations

import os
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmgaugeError
from ..redaction import redact_text
from ..runfolder import Holder, RunFolder, holder, kind_of, load_run
from ..runfolder.folder import CONFIG, REPORT, SAMPLES, SUMMARY
from ..runfolder.lock import LOCK
from ..runfolder.schema import MANIFEST
from .journal import EvalJournal
from .live import LiveScores
from .views import headline, perf_headline

RUNNING, COMPLETE, INTERRUPTED = "running", "complete", "interrupted"
STATUSES = (RUNNING, COMPLETE, INTERRUPTED)
#: folders never walked into
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "wandb", "swanlog", "mlruns", "site-packages"})
#: folder depth below a served folder the walk goes to
MAX_DEPTH = 8
_WATCHED = (MANIFEST, REPORT, SUMMARY, CONFIG, LOCK)


def _stat_sig(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class Root:
    path: Path          # resolved
    shown: str          # as given on the command line (for the --resume command)
    label: str          # the first part of every id below it


class RunState:
    """One run folder as the app follows it."""

    def __init__(self, root: Root, path: Path):
        self.root = root
        self.path = path
        rel = path.relative_to(root.path).as_posix()
        self.rel = "." if rel in ("", ".") else rel
        self.id = root.label if self.rel == "." else f"{root.label}/{self.rel}"
        self.kind: str | None = None
        self.run: RunFolder | None = None
        self.error: str | None = None
        self.status = INTERRUPTED
        self.holder: Holder | None = None
        self.version = 0
        self.sig: dict[str, Any] = {}
        self.eval: EvalJournal | None = None
        self.live: LiveScores | None = None
        self.lock = threading.RLock()
        self.eval_ready = False  # the journal's first pass is done: the tick follows it from here
        self.checked = 0.0
        self._journal_seen = -1
        self.benchmarks: dict[str, Any] = {}
        self._summary: tuple[int, dict[str, Any]] | None = None

    # -- reading the folder ----------------------------------------------------------------
    def refresh(self) -> bool:
        """Re-read what changed; True when anything the pages show did."""
        with self.lock:
            changed = False
            sig = {name: _stat_sig(self.path / name) for name in _WATCHED}
            if sig != self.sig or self.run is None and self.error is None:
                files_changed = {k for k in sig if sig.get(k) != self.sig.get(k)}
                self.sig = sig
                if files_changed - {LOCK} or self.run is None:
                    self._load()
                changed = True
            held = holder(self.path) if sig.get(LOCK) is not None else None
            status = self._status(held)
            if status != self.status or (held is None) != (self.holder is None):
                self.status, self.holder = status, held
                changed = True
            if self.eval is not None and self.eval_ready:
                self.eval.follow()
                # any thread may have read the new lines (a page asking for samples): the
                # journal's version says whether it changed since this run last looked
                if self.eval.version != self._journal_seen:
                    self._journal_seen = self.eval.version
                    changed = True
            if changed:
                self.version += 1
            if self.live is not None and self.eval is not None:
                self.live.note_progress(len(self.eval))
            return changed

    def _load(self) -> None:
        try:
            run = load_run(self.path)
        except LmgaugeError as exc:
            self.run, self.error = None, exc.line()
            return
        except Exception as exc:  # noqa: BLE001 - a broken folder must not stop the others
            self.run, self.error = None, f"cannot read {self.path.name}: {type(exc).__name__}: {exc}"
            return
        self.run, self.error = run, None
        self.kind = run.kind
        if self.eval is not None and self.live is not None:
            repeats = self.repeats
            if repeats != self.live.repeats:
                self.live = None
                self.eval = None  # the plan changed (a resume with other settings): read again
                self.eval_ready = False
        if self.live is not None:
            self.live.planned = self.planned() or {}

    def _status(self, held: Holder | None) -> str:
        if held is not None:
            return RUNNING
        run = self.run
        if run is None:
            return INTERRUPTED
        if run.kind == "eval":
            return COMPLETE if run.report is not None and run.report.complete and run.report.results else INTERRUPTED
        if run.kind == "perf":
            if run.summary is None or not run.levels:
                return INTERRUPTED
            return INTERRUPTED if any(lv.interrupted for lv in run.levels) else COMPLETE
        return COMPLETE  # a sweep: its variants say the rest

    # -- eval ------------------------------------------------------------------------------
    @property
    def display_kind(self) -> str:
        return self.run.display_kind if self.run is not None else (self.kind or "?")

    @property
    def repeats(self) -> int:
        run = self.run
        cfg = run.config if run is not None else {}
        value = cfg.get("repeats") or (run.report.repeats if run is not None and run.report is not None else 1)
        try:
            return max(1, int(value))
        except (TypeError, ValueError):
            return 1

    def planned(self) -> dict[str, int] | None:
        """Questions per benchmark when the plan is known: the run's manifest (``planned``,
        when the writer records it) or the report of an earlier session."""
        run = self.run
        if run is None:
            return None
        planned = getattr(run.manifest, "planned", None) if run.manifest is not None else None
        if isinstance(planned, dict) and planned:
            return {str(k): int(v) for k, v in planned.items()}
        if run.report is not None and run.report.benchmarks:
            return {b.benchmark: b.questions for b in run.report.benchmarks if b.questions}
        return None

    def needs_journal(self) -> bool:
        """Live figures come from the journal while the run goes, or when it stopped before
        writing a report."""
        run = self.run
        if run is None or run.kind != "eval":
            return False
        return self.status == RUNNING or run.report is None or not run.report.results

    def open_journal(self) -> EvalJournal:
        """The journal's index, read on first use (the first read costs one pass over it)."""
        with self.lock:
            journal = self.eval
            if journal is None:
                journal = self.eval = EvalJournal(self.path / SAMPLES, self.repeats)
                cfg = self.run.config if self.run is not None else {}
                self.live = LiveScores(cfg, self.repeats, self.planned())
        journal.follow()
        with self.lock:
            if journal is self.eval and not self.eval_ready:
                self.eval_ready = True
                self.version += 1
        return journal

    def live_results(self):
        """(results rows, benchmark summaries): the report's when the run finished, else
        recomputed from the journal."""
        run = self.run
        if run is None or run.kind != "eval":
            return [], []
        if not self.needs_journal():
            return run.results, run.benchmarks
        journal = self.open_journal()
        assert self.live is not None
        return self.live.results(journal)

    def progress(self) -> dict[str, Any]:
        """done, total (None when unknown), whether the total is exact, rate and ETA."""
        run = self.run
        if run is None:
            return {"done": 0, "total": None, "total_exact": False}
        if run.kind == "perf":
            done = len(run.levels)
            planned = _planned_levels(run.config)
            total = max(planned, done) if planned else (done if self.status != RUNNING else None)
            return {"done": done, "total": total, "total_exact": bool(planned) or self.status != RUNNING}
        if run.kind != "eval":
            return {"done": 0, "total": None, "total_exact": False}
        repeats = self.repeats
        planned = self.planned()
        if self.eval is not None:
            done = len(self.eval)
        elif run.report is not None:
            done = sum(b.samples for b in run.report.benchmarks)
        else:
            done = 0
        exact = True
        if planned:
            total: int | None = sum(planned.values()) * repeats
        else:
            limit = run.config.get("limit")
            benches = run.config.get("benchmark") or []
            if isinstance(limit, int) and benches and not run.config.get("collection"):
                total, exact = limit * repeats * len(benches), False
            else:
                total, exact = (done, True) if self.status == COMPLETE else (None, False)
        out: dict[str, Any] = {"done": done, "total": total, "total_exact": exact}
        if self.status == RUNNING and self.live is not None:
            rate = self.live.rate()
            out["rate_per_min"] = round(rate * 60, 2) if rate else None
            eta = self.live.eta(done, total)
            out["eta_s"] = round(eta, 1) if eta is not None else None
        return out

    # -- what the runs page shows ----------------------------------------------------------
    def summary(self, index: "RunIndex") -> dict[str, Any]:
        """The run's entry of GET /api/runs."""
        with self.lock:
            if self.eval is not None and self.eval.version != self._journal_seen:
                self._journal_seen = self.eval.version
                self.version += 1
            cached = self._summary
            if cached is not None and cached[0] == self.version:
                return cached[1]
            version = self.version
        run = self.run
        out: dict[str, Any] = {"id": self.id, "version": version, "path": self.rel, "root": self.root.shown,
                               "kind": self.display_kind,
                               "status": self.status, "model": run.model if run else "?",
                               "backend": run.backend if run else "", "created": run.created if run else "",
                               "error": self.error}
        out.update(self.progress())
        out["benchmarks"], out["scores"] = [], []
        out["duration_s"] = None
        out["sweep"] = out["source"] = None
        out["values"] = None
        out["resume"] = self.resume_command()
        if self.holder is not None:
            out["writer"] = {"pid": self.holder.pid, "host": self.holder.host}
        if run is not None:
            m = run.manifest
            if m is not None and m.sweep:
                out["sweep"] = index.id_of(self.path / m.sweep)
                out["values"] = {str(k): _plain(v) for k, v in (m.values or {}).items()} or None
            if m is not None and m.source:
                out["source"] = index.id_of(self.path / m.source) or m.source
            if run.kind == "eval":
                rows, summaries = self.live_results()
                out["benchmarks"] = [s.benchmark for s in summaries] or list(dict.fromkeys(r.benchmark for r in rows))
                out["scores"] = headline(rows)
                out["errors"] = sum(s.errors + s.grader_errors for s in summaries)
                out["truncated"] = sum(s.truncated for s in summaries)
                if run.report is not None:
                    out["duration_s"] = run.report.elapsed_s
            elif run.kind == "perf":
                out["perf"] = perf_headline(run)
                out["duration_s"] = round(sum(lv.duration_s or 0.0 for lv in run.levels), 3) if run.levels else None
        with self.lock:
            if self.version == version:
                self._summary = (version, out)
        return out

    def resume_command(self) -> str | None:
        if self.status != INTERRUPTED or self.run is None or self.run.display_kind != "eval":
            return None
        shown = self.root.shown if self.rel == "." else os.path.join(self.root.shown, self.rel)
        return f"lmgauge eval --resume {shlex.quote(shown)}"


def _plain(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else redact_text(str(v))


def _planned_levels(config: dict[str, Any]) -> int | None:
    """How many levels a perf run's settings ask for (concurrency or rate list); None when the
    run searches (SLA) or ramps."""
    if config.get("sla_search"):
        return None
    for key in ("rate", "concurrency"):
        value = config.get(key)
        if isinstance(value, list) and value:
            return len(value)
    return None


# ------------------------------------------------------------------------------------------
@dataclass
class _Dir:
    mtime: int
    children: list[str] = field(default_factory=list)
    is_run: bool = False


class RunIndex:
    """Every run folder under the served folders."""

    def __init__(self, dirs: list[str]):
        self.roots: list[Root] = []
        labels: set[str] = set()
        for shown in dirs:
            path = Path(shown).resolve()
            label = path.name or "root"
            n = 2
            while label in labels:
                label, n = f"{path.name}~{n}", n + 1
            labels.add(label)
            self.roots.append(Root(path, shown, label))
        self.runs: dict[str, RunState] = {}
        self.by_path: dict[Path, str] = {}
        self._dirs: dict[Path, _Dir] = {}
        self.lock = threading.RLock()

    def id_of(self, path: Path) -> str | None:
        try:
            return self.by_path.get(Path(os.path.normpath(path)))
        except (OSError, ValueError):
            return None

    def get(self, run_id: str) -> RunState | None:
        return self.runs.get(run_id)

    def states(self) -> list[RunState]:
        with self.lock:
            return list(self.runs.values())

    # -- the walk --------------------------------------------------------------------------
    def scan(self) -> tuple[list[RunState], list[str]]:
        """Walk the served folders; (runs found now, ids gone)."""
        found: dict[Path, Root] = {}
        for root in self.roots:
            self._walk(root, root.path, 0, found, inside_run=False)
        added, removed = [], []
        with self.lock:
            for path, root in found.items():
                if path not in self.by_path:
                    state = RunState(root, path)
                    self.runs[state.id] = state
                    self.by_path[path] = state.id
                    added.append(state)
            for path in [p for p in self.by_path if p not in found]:
                rid = self.by_path.pop(path)
                self.runs.pop(rid, None)
                removed.append(rid)
        return added, removed

    def _walk(self, root: Root, path: Path, depth: int, found: dict[Path, Root], inside_run: bool) -> None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            self._dirs.pop(path, None)
            return
        known = self._dirs.get(path)
        if known is None or known.mtime != st.st_mtime_ns:
            children = []
            try:
                with os.scandir(path) as it:
                    for entry in it:
                        name = entry.name
                        if name.startswith(".") or name in SKIP_DIRS:
                            continue
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                children.append(name)
                        except OSError:
                            continue
            except OSError:
                return
            # a folder becomes (or stops being) a run folder by files made or removed in it,
            # which change its mtime: only then is it looked at again
            is_run = _looks_like_run(path, root.path) and kind_of(path)[0] is not None
            known = self._dirs[path] = _Dir(st.st_mtime_ns, sorted(children), is_run)
        if known.is_run:
            found[path] = root
        if depth >= MAX_DEPTH:
            return
        for name in known.children:
            child = path / name
            if known.is_run or inside_run:
                # inside a run folder only run folders count (regrade-TIME/, sweep variants)
                sub = self._dirs.get(child)
                if sub is None or sub.is_run or _looks_like_run(child, root.path):
                    self._walk(root, child, depth + 1, found, inside_run=True)
            else:
                self._walk(root, child, depth + 1, found, inside_run=False)


def _looks_like_run(path: Path, root: Path) -> bool:
    """A cheap test before kind_of: one of the files that make a run folder, none of them
    linking outside the served folder."""
    present = False
    for name in (MANIFEST, REPORT, SUMMARY, "sweep.json", SAMPLES, CONFIG, "perf.sqlite"):
        p = path / name
        try:
            if p.is_symlink():
                target = Path(os.path.realpath(p))
                if target != root and root not in target.parents:
                    return False
            if name in (MANIFEST, REPORT, SUMMARY, "sweep.json") and p.is_file():
                present = True
        except OSError:
            continue
    return present
