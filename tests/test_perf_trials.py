"""--trials K (each level K times, merged, with 95 % CIs), --reset-cache (vLLM and SGLang routes,
and the note elsewhere), the CI math (t-interval width against K, bootstrap over requests) and
the SLA search (interpolation against bisection; CI-decided probes).

End to end against tests/perf_server.py on 127.0.0.1 (known TTFT and ITL; --engine vllm|sglang
serves the cache-reset routes and logs each reset; --prefix-cache shows whether a reset happened:
the same seeded prompts every trial hit the cache unless it was reset)."""
from __future__ import annotations

import json
import math
import random
import sqlite3
import subprocess

import pytest

from conftest import run_cli
from lmgauge.perf.sla import SLASearch, parse_objectives, parse_range
from lmgauge.perf.trials import Resampled, percentile_interval, t_interval
from lmgauge.runfolder import Distribution, PerfLevel, load_run

ENV = {"LMGAUGE_PLUGINS": "openai,random,openqa"}
RANDOM = ["--dataset", "random", "--min-prompt-length", "64", "--max-prompt-length", "64", "--max-tokens", "8"]


@pytest.fixture
def server(stream_server):
    """tests/perf_server.py with the given flags (conftest's stream_server); its chat URL."""
    return stream_server


def perf(url: str, out, *args: str) -> subprocess.CompletedProcess:
    return run_cli("perf", "--url", url, "--model", "perf-model", "--output", str(out), *args, env=ENV, check=True)


def test_trials_merge_levels_with_confidence_intervals(server, tmp_path):
    url = server("--ttft", "0.02", "--itl", "0.002", "--tokens", "8")
    proc = perf(url, tmp_path / "t", "--concurrency", "2", "4", "--number", "16", "--trials", "3", *RANDOM)
    run = load_run(tmp_path / "t")
    assert run.summary.trials == 3 and len(run.levels) == 2  # one entry per level, merged over its trials
    for lv in run.levels:
        assert lv.trials == 3 and [t.trial for t in lv.per_trial] == [1, 2, 3]
        assert lv.requests == 3 * 16 == sum(t.requests for t in lv.per_trial)
        # every declared metric has a CI by its --sla name, and the interval is around the trial mean
        for name, (key, stat) in {"ttft_p50": ("ttft_s", "p50"), "ttft_p99": ("ttft_s", "p99"),
                                  "tpot_p50": ("tpot_s", "p50"), "tpot_p99": ("tpot_s", "p99"),
                                  "itl_p50": ("itl_s", "p50"), "latency_p50": ("latency_s", "p50"),
                                  "latency_p99": ("latency_s", "p99"), "output_tps": ("output_token_throughput", None),
                                  "rps": ("request_throughput", None)}.items():
            lo, hi = lv.ci[name]
            vals = [t.stat(key, stat) for t in lv.per_trial]
            mean = sum(vals) / 3
            assert lo <= mean <= hi and math.isclose((lo + hi) / 2, mean, rel_tol=1e-9), name
        assert 0.019 < lv.ci["ttft_p50"][0] and lv.ci["ttft_p50"][1] < 0.030  # the server's 20 ms (+ client)
        # rates merged over the summed wall times
        assert math.isclose(lv.stat("request_throughput"), lv.succeeded / lv.duration_s, rel_tol=1e-6)
        assert math.isclose(lv.duration_s, sum(t.duration_s for t in lv.per_trial), rel_tol=1e-9)
    db = sqlite3.connect(tmp_path / "t" / "perf.sqlite")
    assert db.execute("SELECT run_id, trial, COUNT(*) FROM requests GROUP BY 1, 2").fetchall() == [
        (1, 1, 16), (1, 2, 16), (1, 3, 16), (2, 1, 16), (2, 2, 16), (2, 3, 16)]
    # mean ± CI in the sweep table (perf and report), trial lines on stderr
    assert "±" in proc.stdout and proc.stderr.count("trial 3/3") == 2
    report = run_cli("report", str(tmp_path / "t"), "-o", str(tmp_path / "r.html"), env=ENV, check=True)
    assert "±" in report.stdout and "±" in (tmp_path / "r.html").read_text()


def test_one_trial_gets_a_bootstrap_interval_and_no_trials_changes_nothing(server, tmp_path):
    url = server("--ttft", "0.03", "--tokens", "8")
    perf(url, tmp_path / "one", "--concurrency", "4", "--number", "120", "--trials", "1", *RANDOM)
    lv = load_run(tmp_path / "one").levels[0]
    assert lv.trials == 1 and lv.per_trial is None
    lo, hi = lv.ci["ttft_p50"]
    assert lo <= lv.stat("ttft_s", "p50") <= hi and hi - lo < 0.005  # 120 requests of a steady 30 ms
    lo, hi = lv.ci["rps"]  # batch means over time
    assert lo < lv.stat("request_throughput") < hi
    proc = perf(url, tmp_path / "none", "--concurrency", "4", "--number", "20", *RANDOM)
    plain = load_run(tmp_path / "none").levels[0]
    assert plain.ci is None and plain.trials is None and plain.per_trial is None and "±" not in proc.stdout
    raw = json.loads((tmp_path / "none" / "summary.json").read_text())
    assert "trials" not in raw and not {"ci", "trials", "per_trial", "trial"} & set(raw["runs"][0])


def test_ci_width_shrinks_with_the_number_of_trials():
    # the t-interval's expected width is 2 t(0.975, K-1) c4(K) sigma / sqrt(K): check it (and its
    # coverage) on simulated trial values, then the real thing on a server below
    rng = random.Random(0)
    sigma, widths = 1.0, {}
    for k in (2, 3, 5, 10, 20):
        w, cover = [], 0
        for _ in range(2000):
            vals = [rng.gauss(10, sigma) for _ in range(k)]
            lo, hi = t_interval(vals)
            w.append(hi - lo)
            cover += lo <= 10 <= hi
        from scipy import stats

        c4 = math.sqrt(2 / (k - 1)) * math.gamma(k / 2) / math.gamma((k - 1) / 2)
        expected = 2 * stats.t.ppf(0.975, k - 1) * c4 * sigma / math.sqrt(k)
        widths[k] = sum(w) / len(w)
        assert abs(widths[k] / expected - 1) < 0.06, (k, widths[k], expected)
        assert 0.93 < cover / 2000 < 0.97, (k, cover)
    assert widths[2] > widths[3] > widths[5] > widths[10] > widths[20]


def test_ci_width_shrinks_with_trials_on_a_server(server, tmp_path):
    # 16 trials of one level; the intervals of disjoint groups of 2, 4 and 8 of them, averaged
    # over the groups, against the 16's own (expected about 13x, 3x and 1.6x wider)
    url = server("--ttft", "0.02", "--tokens", "4")
    perf(url, tmp_path / "k16", "--concurrency", "2", "--number", "24", "--trials", "16", *RANDOM)
    lv = load_run(tmp_path / "k16").levels[0]
    # the median latency: a stall of this shared machine in one trial moves a mean, hardly a median
    values = [t.stat("latency_s", "p50") for t in lv.per_trial]
    assert lv.ci["latency_p50"] == pytest.approx(t_interval(values))
    width = {}
    for k in (2, 4, 8, 16):
        groups = [values[i:i + k] for i in range(0, 16, k)]
        width[k] = sum(hi - lo for lo, hi in map(t_interval, groups)) / len(groups)
    assert width[2] > width[4] > width[8] > width[16], width
    assert width[16] < width[2] / 4, width


def test_bootstrap_over_requests_covers_the_true_percentile():
    rng = random.Random(1)
    cover = 0
    for s in range(200):
        vals = [[rng.expovariate(1.0)] for _ in range(300)]
        ci = percentile_interval(Resampled(vals, 400, seed=s).draws("p50"))
        cover += ci[0] <= math.log(2) <= ci[1]
    assert 0.90 <= cover / 200 <= 0.99, cover
    # several values per request (ITL): whole requests are resampled
    clustered = [[1.0 + k] * 5 for k in range(50)]
    draws = Resampled(clustered, 300, seed=0).draws("mean")
    assert abs(sum(draws) / len(draws) - 25.5) < 1.0 and min(draws) < 25.5 < max(draws)


# -- --reset-cache ------------------------------------------------------------------------------
def _resets(log) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines() if '"reset"' in x] if log.exists() else []


def test_reset_cache_reaches_vllm_in_dev_mode(server, tmp_path):
    log = tmp_path / "server.jsonl"
    url = server("--ttft", "0.01", "--tokens", "4", "--engine", "vllm", "--dev-mode", "--prefix-cache", "--log", str(log))
    perf(url, tmp_path / "reset", "--concurrency", "2", "--number", "6", "--trials", "2", "--reset-cache", *RANDOM)
    assert [r["reset"] for r in _resets(log)] == ["/reset_prefix_cache"] * 2  # before each trial
    lv = load_run(tmp_path / "reset").levels[0]
    assert lv.reset_cache["status"] == "reset" and lv.reset_cache["resets"] == 2 and lv.reset_cache["servers"] == ["vllm"]
    assert [t.reset_cache["trial"] for t in lv.per_trial] == [1, 2]
    # the second trial sent the same prompts: after the reset, no prefix-cache hit
    assert lv.per_trial[1].dist("prefix_cache_hit_rate").mean == 0.0
    # without --reset-cache the second trial hits the cache: the reset is what made the difference
    perf(url, tmp_path / "warm", "--concurrency", "2", "--number", "6", "--trials", "2", "--seed", "7", *RANDOM)
    warm = load_run(tmp_path / "warm").levels[0]
    assert warm.reset_cache is None and warm.per_trial[1].dist("prefix_cache_hit_rate").mean > 0.5


def test_reset_cache_reaches_sglang(server, tmp_path):
    log = tmp_path / "server.jsonl"
    url = server("--ttft", "0.01", "--tokens", "4", "--engine", "sglang", "--prefix-cache", "--log", str(log))
    perf(url, tmp_path / "sg", "--concurrency", "2", "4", "--number", "6", "--reset-cache", *RANDOM)
    assert [r["reset"] for r in _resets(log)] == ["/flush_cache"] * 2  # one trial per level: before each level
    levels = load_run(tmp_path / "sg").levels
    assert all(lv.reset_cache["status"] == "reset" and lv.reset_cache["routes"] == ["/flush_cache"] for lv in levels)


def test_reset_cache_refused_by_vllm_without_dev_mode_or_absent_is_one_note(server, tmp_path):
    url = server("--ttft", "0.01", "--tokens", "4", "--engine", "vllm")
    proc = perf(url, tmp_path / "nodev", "--concurrency", "2", "4", "--number", "4", "--trials", "2", "--reset-cache",
                *RANDOM)
    notes = [line for line in proc.stderr.splitlines() if "--reset-cache" in line]
    assert len(notes) == 1 and "VLLM_SERVER_DEV_MODE=1" in notes[0] and "nothing was reset" in notes[0], proc.stderr
    lv = load_run(tmp_path / "nodev").levels[1]
    assert lv.reset_cache["status"] == "refused" and lv.reset_cache["resets"] == 0
    assert "VLLM_SERVER_DEV_MODE=1" in lv.reset_cache["detail"]
    other = server("--ttft", "0.01", "--tokens", "4")
    proc = perf(other, tmp_path / "other", "--concurrency", "2", "4", "--number", "4", "--reset-cache", *RANDOM)
    notes = [line for line in proc.stderr.splitlines() if "--reset-cache" in line]
    assert len(notes) == 1 and "nothing was reset" in notes[0] and "no prefix-cache reset" in notes[0], proc.stderr
    assert load_run(tmp_path / "other").levels[0].reset_cache["status"] == "none"


# -- the SLA search -------------------------------------------------------------------------------
def synth(value: float, rps: float, trials: list[float] | None = None) -> PerfLevel:
    lv = PerfLevel(requests=10, succeeded=10, figures={"ttft_s": Distribution(10, {"p99": value, "mean": value}),
                                                       "request_throughput": rps, "success_rate": 1.0})
    if trials:
        lv.per_trial = [PerfLevel(requests=10, succeeded=10, figures={"ttft_s": Distribution(10, {"p99": v})})
                        for v in trials]
    return lv


def bisection_probes(dimension: str, latency, rng: str | None = None) -> int:
    """The search as it was before interpolation: double, then bisect (the reference)."""
    lo_, hi_ = parse_range(rng, dimension)
    s = SLASearch(parse_objectives("ttft_p99<=500ms"), dimension, lo_, hi_)
    met = lambda x: latency(x) <= 0.5  # noqa: E731
    n, load, lo, hi = 0, s._round(lo_), None, None
    while True:
        n += 1
        if not met(load):
            hi = load
            break
        lo = load
        if load >= hi_:
            return n
        load = s._round(min(hi_, load * 2))
    if lo is None:
        return n
    while not s._close_enough(lo, hi):
        mid = s._mid(lo, hi)
        if mid <= lo or mid >= hi:
            break
        n += 1
        lo, hi = (mid, hi) if met(mid) else (lo, mid)
    return n


def search(dimension: str, latency, rng: str | None = None) -> SLASearch:
    s = SLASearch(parse_objectives("ttft_p99<=500ms"), dimension, *parse_range(rng, dimension))
    for load in s.loads():
        s.record(load, synth(latency(load), load))
    return s


def test_sla_interpolation_takes_fewer_probes_on_a_linear_curve():
    # the case: TTFT grows linearly with load and crosses 500 ms at concurrency 45
    line = lambda c: 0.5 * c / 45  # noqa: E731
    assert bisection_probes("concurrency", line) == 11
    s = search("concurrency", line)
    assert len(s.probes) <= 8 and s.best in (44, 45), [(p.load, p.met) for p in s.probes]
    for frontier in (7.5, 22.5, 300.0):
        s = search("rate", lambda r, f=frontier: 0.5 * r / f)
        assert len(s.probes) < bisection_probes("rate", lambda r, f=frontier: 0.5 * r / f)
        assert frontier * 0.95 <= s.best <= frontier


def test_sla_search_is_never_worse_than_bisection_on_steps():
    rng = random.Random(3)
    for dimension in ("concurrency", "rate"):
        lo, hi = parse_range(None, dimension)
        for _ in range(60):
            f = math.exp(rng.uniform(math.log(lo * 1.5), math.log(hi / 1.5)))
            step = lambda x, f=f: 0.1 if x <= f else 5.0  # noqa: E731
            s = search(dimension, step)
            assert len(s.probes) <= bisection_probes(dimension, step), (dimension, f)
            assert s.best <= f and s._close_enough(s.best, min(p.load for p in s.probes if not p.met))


def test_sla_probe_with_trials_meets_only_if_the_ci_says_so():
    s = SLASearch(parse_objectives("ttft_p99<=500ms"), "concurrency", 1, 64)
    clear = s.record(8, synth(0.40, 10, trials=[0.39, 0.40, 0.41]))
    assert clear.met and clear.bounds["ttft_p99<=500ms"] < 0.5
    # the mean (0.49) meets the limit, the upper bound of its CI does not: missed
    straddle = s.record(16, synth(0.49, 10, trials=[0.44, 0.49, 0.54]))
    assert not straddle.met and straddle.values["ttft_p99<=500ms"] == 0.49 and straddle.bounds["ttft_p99<=500ms"] > 0.5
    # one trial: the measured value decides, as before
    assert s.record(32, synth(0.49, 10)).met
    # a probe stopped for over-saturation misses, whatever its figures
    stopped = synth(0.1, 10)
    stopped.stopped = {"reason": "over-saturated"}
    assert not s.record(64, stopped).met


def test_sla_search_end_to_end_on_the_linear_server(server, tmp_path):
    # TTFT = 40 ms + 20 ms per request in flight: ttft_p99<=450ms holds up to concurrency 20 (the
    # shape of bench/sla_search.py's server, 4x slower, so a loaded machine's few ms of client delay
    # cannot move the frontier by more than the accepted 18-20)
    url = server("--ttft", "0.04", "--ttft-per-inflight", "0.02", "--tokens", "4")
    perf(url, tmp_path / "sla", "--sla", "ttft_p99<=450ms", "--sla-search", "concurrency", "--sla-range", "1:64",
         "--number", "40")
    sla = load_run(tmp_path / "sla").summary.sla_search
    probes = [(p["concurrency"], p["met"]) for p in sla["probes"]]
    assert sla["best"] in (18, 19, 20) and len(probes) <= 8, probes  # bisection took 10 here (bench/RESULTS.md)
