"""lmgauge serve at R1 scale: one run of 728 questions × 5 repeats = 3,640 samples with 40 KB
of thinking each (a ~150 MB journal), made by a real ``lmgauge eval`` against
tests/eval_server.py, then 20 such runs in one folder (19 byte copies of the first: each is
its own 150 MB file the server must index); plus one run still going (written with the
run-folder library's JournalWriter and FolderLock, as the runner writes) for the live delay.

Measured, with the real ``lmgauge serve`` in its own process and headless Chromium
(tests/fixtures/browser.py):

- first paint (first-contentful-paint) and "ready" (the script rendered the data) of the runs
  page and of a run page (sections and the first page of samples);
- a sample page deep in the run (offset 3,600): the API call, and paging there in the page;
- full-text search over question, response and reasoning (a rare word and a common one, each
  the first time asked, then again from the cache);
- the delay of a live update: a journal line appended → its SSE event at a client, and → the
  run page's DOM changed;
- the server's RssAnon (mapped journal pages are not anonymous memory), sampled every 0.1 s;
- ``lmgauge report`` on the R1-scale folder: report.html size, build time, peak RSS.

    .venv/bin/python bench/app_scale.py [--runs 20] [--work /tmp/app-scale] [--screenshots DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.app_server import Events, Serve  # noqa: E402
from fixtures.browser import Browser  # noqa: E402

WORDS = ("the", "so", "we", "then", "thus", "wait", "check", "again", "sum", "value", "term", "factor", "let",
         "compute", "hmm", "because", "square", "root", "prime", "divide", "multiply", "answer", "case", "maybe")
RARE = "zanzibar"  # in the thinking of 3 questions (15 samples)


def rid(run_id: str) -> str:
    return quote(run_id, safe="")


def thinking(i: int, size: int) -> str:
    rnd = random.Random(i)
    parts, n = [], 0
    while n < size:
        w = rnd.choice(WORDS) if rnd.random() > 0.1 else str(rnd.randint(0, 9999))
        parts.append(w)
        n += len(w) + 1
    if i in (7, 300, 700):
        parts.insert(len(parts) // 2, RARE)
    return " ".join(parts)[:size]


def make_run(work: Path, questions: int, repeats: int, size: int) -> tuple[Path, float]:
    """A real lmgauge eval against tests/eval_server.py; (its folder, seconds)."""
    from lmgauge_benchmarks.math_500 import math_prompt

    data = work / "r1.jsonl"
    rows = [{"id": f"q{i:04d}", "question": f"What is {i} times 7 plus 3?", "answer": str(7 * i + 3),
             "subset": f"Level {1 + i % 5}"} for i in range(questions)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers, reasoning = {}, {}
    for i, r in enumerate(rows):
        p = math_prompt(r["question"])
        answers[p] = [f"So the answer is \\boxed{{{7 * i + 3 if (i + k) % 3 else 7 * i}}}." for k in range(repeats)]
        reasoning[p] = thinking(i, size)
    script = work / "server.json"
    script.write_text(json.dumps({"model": "r1-scale", "answers": answers, "reasoning": reasoning}))
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "eval_server.py"), str(script)],
                              stdout=subprocess.PIPE, text=True)
    out = work / "one" / "r1-eval"
    try:
        port = int(server.stdout.readline().split()[1])
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lmgauge.cli", "eval", "--base-url", f"http://127.0.0.1:{port}/v1",
                        "--model", "r1-scale", "--benchmark", f"r1=custom_math:{data}", "--repeats", str(repeats),
                        "--concurrency", "32", "--output", str(out), "--no-progress"], check=True,
                       env={**os.environ, "LMGAUGE_PLUGINS": "custom_math,openai"}, stdout=subprocess.DEVNULL)
        took = time.perf_counter() - t0
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    return out, took


def r1_folder(work: Path, questions: int, repeats: int, thinking: int, keep: bool) -> Path:
    """WORK/one/r1-eval, made afresh by :func:`make_run` (WORK emptied first) unless ``keep``
    and an earlier invocation's folder is complete."""
    run = work / "one" / "r1-eval"
    if not (keep and (run / "report.json").exists()):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        run, took = make_run(work, questions, repeats, thinking)
        print(f"made {run}: {questions * repeats} samples, journal "
              f"{(run / 'samples.jsonl').stat().st_size / 1e6:.0f} MB, lmgauge eval took {took:.1f} s", flush=True)
    return run


class Rss:
    """RssAnon of a process, sampled every 0.1 s."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], False
        threading.Thread(target=self._run, daemon=True).start()

    def now(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _run(self) -> None:
        while not self._stop:
            try:
                self.samples.append(self.now())
            except OSError:
                return
            time.sleep(0.1)

    def peak(self) -> float:
        return max(self.samples) if self.samples else float("nan")

    def stop(self) -> None:
        self._stop = True


def timed(fn, n: int = 1) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def paint(b: Browser, url: str, n: int = 3) -> tuple[float, float]:
    """(first-contentful-paint, ready) in ms, medians of n loads in a fresh tab each."""
    fcp, ready = [], []
    for _ in range(n):
        for t in b.send("Target.getTargets")["targetInfos"]:
            if t["type"] == "page" and t["url"] != "about:blank":
                b.send("Target.closeTarget", {"targetId": t["targetId"]})
        page = b.open(url)
        fcp.append(page.eval("""new Promise(function (res) {
            var seen = performance.getEntriesByName('first-contentful-paint')[0];
            if (seen) return res(seen.startTime);
            new PerformanceObserver(function (l) { l.getEntries().forEach(function (e) {
              if (e.name === 'first-contentful-paint') res(e.startTime); }); }).observe({type: 'paint', buffered: true});
            setTimeout(function () { res(null); }, 3000); })"""))
        ready.append(float(page.eval("document.body.getAttribute('data-ready-ms')")))
    return statistics.median(x for x in fcp if x is not None), statistics.median(ready)


def measure(label: str, root: Path, target: str, b: Browser, shots: Path | None) -> dict:
    from lmgauge.runfolder import FolderLock, JournalWriter, SampleRecord, new_manifest

    res: dict = {"label": label}
    t0 = time.perf_counter()
    s = Serve(root, timeout=600)
    res["startup_s"] = time.perf_counter() - t0
    rss = Rss(s.proc.pid)
    try:
        res["rss_start"] = rss.now()
        base = f"/api/runs/{rid(target)}/samples"
        # the first page of samples: the journal's index (the server builds every index in the
        # background from the start; this waits for this one)
        res["index_s"] = timed(lambda: s.json(base + "?limit=1"))[0]
        ids = [r["id"] for r in s.json("/api/runs")["runs"] if r["kind"] == "eval"]
        res["all_index_s"] = time.perf_counter() - t0
        for i in ids:
            s.json(f"/api/runs/{rid(i)}/samples?limit=1")
        res["all_index_s"] = time.perf_counter() - t0
        res["rss_indexed"] = rss.now()
        res["runs_paint"] = paint(b, s.base + "/")
        res["run_paint"] = paint(b, s.base + f"/runs/{rid(target)}")
        res["api_run"] = statistics.median(timed(lambda: s.json(f"/api/runs/{rid(target)}"), 5))
        res["deep_api"] = statistics.median(timed(lambda: s.json(base + "?offset=3600&limit=25&cut=4000"), 10))
        res["deep_api_full"] = statistics.median(timed(lambda: s.json(base + "?offset=3600&limit=25"), 5))
        res["filtered_api"] = statistics.median(timed(lambda: s.json(base + "?status=wrong&repeat=3&offset=200&cut=4000"), 10))
        page = b.open(s.base + f"/runs/{rid(target)}")
        res["deep_browser_ms"] = page.eval("""new Promise(function (res) {
            var input = document.querySelector('#s-pager input'), last = input.max, t0 = performance.now();
            input.value = last; input.dispatchEvent(new Event('change'));
            (function look() { var i = document.querySelector('#s-pager input');
              if (i && i.value === last && !document.querySelector('#s-list').classList.contains('loading')) res(performance.now() - t0);
              else requestAnimationFrame(look); })(); })""")
        if shots:
            page.screenshot(shots / f"{label}-run-last-page.png", full_height=2000)
        for word, key in ((RARE, "search_rare"), ("multiply", "search_common")):
            res[key] = timed(lambda: s.json(base + f"?q={word}&limit=25&cut=4000"))[0]
            res[key + "_hits"] = s.json(base + f"?q={word}&limit=1")["total"]
            res[key + "_cached"] = statistics.median(timed(lambda: s.json(base + f"?q={word}&limit=25&cut=4000"), 5))
        res["rss_searched"] = rss.now()
        # live: a run still going, written as the runner writes
        live = root / "live-now"
        live.mkdir()
        new_manifest("eval").write(live)
        (live / "config.yaml").write_text("model: live\nbenchmark: [r1]\nrepeats: 1\nlimit: 100\n")
        lock = FolderLock(live, "eval").acquire()
        w = JournalWriter(live / "samples.jsonl")
        try:
            s.wait_for(lambda: any(r["id"].endswith("live-now") for r in s.json("/api/runs")["runs"]), 60)
            live_id = next(r["id"] for r in s.json("/api/runs")["runs"] if r["id"].endswith("live-now"))
            ev = Events(s, "?run=" + rid(live_id))
            delays = []
            for i in range(15):
                time.sleep(0.3)
                rec = SampleRecord("r1", f"q{i}", 0, question="q", response="r", reasoning=thinking(i, 40000),
                                   score=1.0, correct=True, score_status="decided")
                t1 = time.perf_counter()
                w.append(rec)
                while True:
                    e = ev.next(timeout=10)
                    if e is None:
                        delays.append(float("nan"))
                        break
                    if e.get("run", {}).get("done") == i + 1:
                        delays.append(time.perf_counter() - t1)
                        break
            ev.close()
            res["live_sse"] = (statistics.median(delays), max(delays))
            page = b.open(s.base + f"/runs/{rid(live_id)}")
            dom = []
            for i in range(15, 25):
                time.sleep(0.3)
                rec = SampleRecord("r1", f"q{i}", 0, question="q", response="r", reasoning=thinking(i, 40000),
                                   score=1.0, correct=True, score_status="decided")
                t1 = time.perf_counter()
                w.append(rec)
                page.wait_for(f"document.querySelector('#st-line').dataset.done === '{i + 1}'", timeout=20)
                dom.append(time.perf_counter() - t1)
            res["live_dom"] = (statistics.median(dom), max(dom))
            if shots:
                page.screenshot(shots / f"{label}-live-run.png", full_height=1600)
        finally:
            w.close()
            lock.release()
            shutil.rmtree(live)
        if shots:
            for name, url in (("runs-page", "/"), ("run-page", f"/runs/{rid(target)}")):
                p = b.open(s.base + url)
                p.screenshot(shots / f"{label}-{name}.png", full_height=2400)
        res["rss_end"] = rss.now()
        res["rss_peak"] = rss.peak()
    finally:
        rss.stop()
        s.stop()
    return res


def report_html(run: Path) -> dict:
    out = run.parent.parent / "report.html"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lmgauge.cli", "report", str(run), "-o", str(out), "--no-tables"],
                          capture_output=True, text=True)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-300:]}
    return {"size_mb": out.stat().st_size / 1e6, "build_s": took, "peak_rss_mb": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=728)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--thinking", type=int, default=40_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", default="/tmp/lmgauge-app-scale")
    ap.add_argument("--screenshots", default=None)
    ap.add_argument("--keep", action="store_true", help="reuse the run folder of an earlier invocation")
    args = ap.parse_args()
    work = Path(args.work)
    shots = Path(args.screenshots) if args.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    run = r1_folder(work, args.questions, args.repeats, args.thinking, args.keep)
    many = work / "many"
    if not (args.keep and many.exists() and len(list(many.iterdir())) == args.runs):
        shutil.rmtree(many, ignore_errors=True)
        many.mkdir()
        for i in range(args.runs):
            shutil.copytree(run, many / f"r1-eval-{i:02d}")
    results = []
    with Browser(timeout=120) as b:
        results.append(measure("1-run", work / "one", "one/r1-eval", b, shots))
        print(json.dumps(results[-1]), flush=True)
        results.append(measure(f"{args.runs}-runs", many, f"many/r1-eval-{min(7, args.runs - 1):02d}", b, shots))
        print(json.dumps(results[-1]), flush=True)
    rep = report_html(run)
    print("report.html:", json.dumps(rep))
    load = os.getloadavg()
    print(f"\nload average during the bench: {load[0]:.1f} (2 cores)\n")
    print("| figure | " + " | ".join(r["label"] for r in results) + " | goal |")
    print("|---|" + "---|" * len(results) + "---|")

    def row(name, fn, goal=""):
        print(f"| {name} | " + " | ".join(fn(r) for r in results) + f" | {goal} |")

    row("server start-up (to the URL line)", lambda r: f"{r['startup_s']:.1f} s")
    row("journal index of the measured run (first samples call)", lambda r: f"{r['index_s']:.2f} s")
    row("every journal indexed, from start", lambda r: f"{r['all_index_s']:.1f} s")
    row("runs page: first paint / ready", lambda r: f"{r['runs_paint'][0]:.0f} / {r['runs_paint'][1]:.0f} ms", "≤ 1 s")
    row("run page: first paint / ready (first page of samples shown)",
        lambda r: f"{r['run_paint'][0]:.0f} / {r['run_paint'][1]:.0f} ms", "≤ 1 s")
    row("GET /api/runs/{id} (live results)", lambda r: f"{1000 * r['api_run']:.0f} ms")
    row("sample page at offset 3,600 (API, texts cut to 4,000 chars)", lambda r: f"{1000 * r['deep_api']:.0f} ms", "≤ 200 ms")
    row("same, full texts (~1 MB of JSON)", lambda r: f"{1000 * r['deep_api_full']:.0f} ms")
    row("filtered page (status, repeat, offset 200)", lambda r: f"{1000 * r['filtered_api']:.0f} ms")
    row("paging to the last page in the browser", lambda r: f"{r['deep_browser_ms']:.0f} ms", "≤ 200 ms")
    row(f"search, rare word (first time / cached)",
        lambda r: f"{1000 * r['search_rare']:.0f} / {1000 * r['search_rare_cached']:.0f} ms ({r['search_rare_hits']} hits)", "≤ 1 s")
    row("search, common word (first time / cached)",
        lambda r: f"{1000 * r['search_common']:.0f} / {1000 * r['search_common_cached']:.0f} ms ({r['search_common_hits']} hits)", "≤ 1 s")
    row("live: line written → SSE event (median / max of 15)",
        lambda r: f"{1000 * r['live_sse'][0]:.0f} / {1000 * r['live_sse'][1]:.0f} ms", "≤ 2 s")
    row("live: line written → run page updated (median / max of 10)",
        lambda r: f"{1000 * r['live_dom'][0]:.0f} / {1000 * r['live_dom'][1]:.0f} ms", "≤ 2 s")
    row("RssAnon: started / indexed / after searches / end",
        lambda r: f"{r['rss_start']:.0f} / {r['rss_indexed']:.0f} / {r['rss_searched']:.0f} / {r['rss_end']:.0f} MB")
    row("RssAnon peak (sampled every 0.1 s)", lambda r: f"{r['rss_peak']:.0f} MB", "≤ 300 MB")


if __name__ == "__main__":
    main()
