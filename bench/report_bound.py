"""report.html at R1 scale, bounded (the default) against ``--full-samples`` (every character,
as every report was before [3/6] point 6), side by side in one run.

The run folder is the one bench/app_scale.py makes: a real ``lmgauge eval`` against
tests/eval_server.py, 728 questions × 5 repeats = 3,640 samples with 40,000 characters of
reasoning each (a ~148 MB journal). For each mode, in a fresh process each time:

- ``lmgauge report DIR -o FILE --no-tables``: wall time and the child's peak RSS;
- the file's size;
- headless Chromium (tests/fixtures/browser.py): time from navigation to the page's script
  having rendered the first page of samples (``data-ready``), and the JS heap then.

    .venv/bin/python bench/report_bound.py [--work /tmp/lmgauge-report-bound] [--keep]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from app_scale import r1_folder  # noqa: E402
from fixtures.browser import Browser  # noqa: E402

PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def build(run: Path, out: Path, full: bool) -> dict:
    cmd = [sys.executable, "-m", "lmgauge.cli", "report", str(run), "-o", str(out), "--no-tables"]
    if full:
        cmd.append("--full-samples")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, check=True)
    took = time.perf_counter() - t0
    return {"build_s": took, "peak_rss_mb": int(proc.stdout.split()[-1]) / 1024, "size_mb": out.stat().st_size / 1e6}


def load(b: Browser, out: Path, n: int = 3) -> dict:
    ready, heap = [], []
    for _ in range(n):
        for t in b.send("Target.getTargets")["targetInfos"]:
            if t["type"] == "page" and t["url"] != "about:blank":
                b.send("Target.closeTarget", {"targetId": t["targetId"]})
        t0 = time.perf_counter()
        page = b.open(out.resolve().as_uri())
        page.wait_for("document.body.getAttribute('data-ready') === '1'", timeout=120)
        ready.append(time.perf_counter() - t0)
        heap.append(page.send("Runtime.getHeapUsage")["usedSize"] / 1e6)
    return {"ready_s": statistics.median(ready), "js_heap_mb": statistics.median(heap)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=728)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--thinking", type=int, default=40_000)
    ap.add_argument("--work", default="/tmp/lmgauge-report-bound")
    ap.add_argument("--keep", action="store_true", help="reuse the run folder of an earlier invocation")
    args = ap.parse_args()
    work = Path(args.work)
    run = r1_folder(work, args.questions, args.repeats, args.thinking, args.keep)
    res = {}
    with Browser(timeout=180) as b:
        for label, full in (("bounded (default)", False), ("--full-samples", True)):
            out = work / ("full.html" if full else "bounded.html")
            res[label] = {**build(run, out, full), **load(b, out)}
            print(label, json.dumps(res[label]), flush=True)
    print("\n| figure | " + " | ".join(res) + " |")
    print("|---|" + "---|" * len(res))
    for name, key, fmt in (("report.html size", "size_mb", "{:.1f} MB"), ("build time", "build_s", "{:.1f} s"),
                           ("build peak RSS", "peak_rss_mb", "{:.0f} MB"),
                           ("Chromium: navigation → first page rendered (median of 3)", "ready_s", "{:.2f} s"),
                           ("Chromium: JS heap then", "js_heap_mb", "{:.0f} MB")):
        print(f"| {name} | " + " | ".join(fmt.format(r[key]) for r in res.values()) + " |")


if __name__ == "__main__":
    main()
