"""How long `lmgauge compare` takes on two perf runs of 10 levels x 3 trials x 2,000 requests.

Writes two perf run folders with lmgauge perf's own writers (request rows, per-trial levels,
merge_trials, level_ci, PerfStore, summary.json) from synthetic closed-loop timings: 10
concurrency levels, 3 trials each of 2,000 requests with 64 output tokens (B 5 % slower), and
the same two runs without trials (2,000 requests per level, the bootstrap path). Then times:

- trials:    compare_perf_runs on the two runs with trials (t-intervals from summary.json)
- bootstrap: compare_perf_runs on the runs without trials (perf.sqlite read, bootstrap over
             requests with --resamples, Little's-law bootstrap of the rates)
- cli:       `lmgauge compare A B --json FILE` end to end in a fresh process (imports included)
- write:     building one run folder with trials (rows, merge, CIs, sqlite): the run-side cost

Run: .venv/bin/python bench/perf_compare.py [--levels 10] [--trials 3] [--requests 2000]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def records(conc: int, n: int, slow: float, rnd: random.Random, out_tokens: int = 64):
    """A closed loop of ``conc`` clients: each sends its next request when the last one ends."""
    from lmgauge.types import PerfRecord

    clients = [1000.0] * conc
    recs = []
    for j in range(n):
        k = min(range(conc), key=clients.__getitem__)
        sent = clients[k]
        ttft = (0.03 + 0.002 * conc) * slow * (0.8 + 0.4 * rnd.random())
        tpot = (0.01 + 0.0002 * conc) * slow * (0.9 + 0.2 * rnd.random())
        rec = PerfRecord(index=j, scheduled=sent, sent=sent, prompt_tokens=512)
        times = [sent + ttft]
        for _ in range(out_tokens - 1):
            times.append(times[-1] + tpot * (0.8 + 0.4 * rnd.random()))
        rec.first_token = rec.first_content = times[0]
        rec.chunk_times, rec.chunk_texts = times, [" tok"] * len(times)
        rec.end, rec.completion_tokens, rec.success = times[-1], out_tokens, True
        clients[k] = rec.end
        recs.append(rec)
    return recs


def write_run(out: Path, levels: list[int], trials: int | None, n: int, slow: float, seed: int) -> float:
    from lmgauge.perf.metrics import aggregate, request_row
    from lmgauge.perf.registry import computation_order, metric_columns, perf_metrics
    from lmgauge.perf.run import write_summary
    from lmgauge.perf.trials import Trial, level_ci, merge_trials
    from lmgauge.plugins import PluginManager
    from lmgauge.runfolder import PerfStore, PerfSummary
    from lmgauge.runsetup import create_folder

    t0 = time.perf_counter()
    rnd = random.Random(seed)
    metrics = perf_metrics(PluginManager(only=["openai"]))
    cfg = {"model": "m", "backend": "openai", "concurrency": levels, "number": [n], "dataset": "random",
           "max_tokens": 64, "api": "chat", "trials": trials}
    lock = create_folder(out, "perf", cfg)
    summary = PerfSummary(model="m", backend="openai", config=cfg, api="chat", generates_text=True, trials=trials)
    store = PerfStore(out / "perf.sqlite", metric_columns(metrics))
    for i, conc in enumerate(levels, 1):
        done = []
        for t in range(1, (trials or 1) + 1):
            recs = records(conc, n, slow, rnd)
            rows = [request_row(r, computation_order(metrics), None, 1000.0, i) for r in recs]
            for r in rows:
                r.trial = t if trials else None
            wall = max(r.end for r in recs) - 1000.0
            lv = aggregate(recs, rows, metrics, wall_s=wall, concurrency=conc, rate=None, slo={})
            lv.api, lv.generates_text, lv.trial = "chat", True, t if trials else None
            done.append(Trial(t, lv, recs, rows, wall))
        if len(done) > 1:
            run = merge_trials(done, metrics, concurrency=conc, rate=None, slo={})
        else:
            run = done[0].level
        rows = [r for d in done for r in d.rows]
        if trials:
            run.trials = len(done)
            run.ci = level_ci(run, run.per_trial or [], rows, metrics)
        summary.runs.append(run)
        store.add_level(i, run, rows)
    write_summary(out / "summary.json", summary)
    store.close()
    lock.release()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", type=int, default=10)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--resamples", type=int, default=1000)
    a = ap.parse_args()
    os.environ["LMGAUGE_PLUGINS"] = "openai"
    from lmgauge.perf.compare import compare_perf_runs

    levels = [2 ** k for k in range(a.levels)]
    root = Path(tempfile.mkdtemp(prefix="lmgauge-perfcmp-"))
    t_write = write_run(root / "a", levels, a.trials, a.requests, 1.0, 1)
    write_run(root / "b", levels, a.trials, a.requests, 1.05, 2)
    write_run(root / "a1", levels, None, a.requests, 1.0, 3)
    write_run(root / "b1", levels, None, a.requests, 1.05, 4)
    size = sum(f.stat().st_size for f in (root / "a").iterdir())
    t0 = time.perf_counter()
    res = compare_perf_runs(root / "a", root / "b")
    t_trials = time.perf_counter() - t0
    t0 = time.perf_counter()
    boot = compare_perf_runs(root / "a1", root / "b1", resamples=a.resamples)
    t_boot = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lmgauge.cli", "compare", str(root / "a"), str(root / "b"), "--json",
                    str(root / "ab.json")], check=True, capture_output=True, env={**os.environ})
    t_cli = time.perf_counter() - t0
    c = res.levels[0].metrics["tpot_p50"]
    cb = boot.levels[0].metrics["tpot_p50"]
    print(f"{a.levels} levels x {a.trials} trials x {a.requests} requests per trial; run folder {size / 1e6:.1f} MB")
    print("| step | time |")
    print("|---|---:|")
    print(f"| compare, trials (t-intervals from summary.json) | {t_trials:.2f} s |")
    print(f"| compare, no trials ({a.levels} x {a.requests} requests, bootstrap, {a.resamples} resamples) | {t_boot:.2f} s |")
    print(f"| `lmgauge compare A B --json` (trials), fresh process | {t_cli:.2f} s |")
    print(f"| writing one run with trials (rows, merge, CIs, sqlite) | {t_write:.2f} s |")
    print(f"tpot_p50 at {res.levels[0].level}: trials {c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]; "
          f"bootstrap {cb.ratio:.3f} [{cb.ci_low:.3f}, {cb.ci_high:.3f}] (true 1.05)")


if __name__ == "__main__":
    main()
