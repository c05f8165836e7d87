"""The SLA frontier search (--sla-search) and the knee of a sweep.

End to end: tests/perf_server.py with ``--ttft-per-inflight``, whose TTFT is a known function of
the requests in flight (TTFT = base + k × in-flight), so the frontier of ``ttft_p99<=X`` is known
in advance. Unit level: the search on exact synthetic latency functions, objective parsing
(lmgauge's and EvalScope's forms), and the knee named by the sweep summary."""
from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import assert_one_line_error, run_cli
from lmgauge.errors import ConfigError
from lmgauge.perf.advice import best_and_advice
from lmgauge.runfolder import Distribution, PerfLevel
from lmgauge.perf.sla import SLASearch, parse_objectives, parse_range
from test_perf import ENV


def test_search_converges_on_a_server_whose_latency_grows_with_load(stream_server, tmp_path):
    # TTFT = 10 ms + 20 ms per request in flight: concurrency c gives 10 + 20c ms, so
    # ttft_p99 <= 180 ms holds up to c = 8 (170 ms) and fails from c = 9 (190 ms)
    url = stream_server("--ttft", "0.01", "--ttft-per-inflight", "0.02", "--tokens", "4")
    out = tmp_path / "sla"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--sla", "ttft_p99<=180ms",
                   "--sla-search", "concurrency", "--sla-range", "1:64", "--number", "24", "--output", str(out),
                   env=ENV, check=True)
    s = json.loads((out / "summary.json").read_text())
    search = s["sla_search"]
    assert search["dimension"] == "concurrency" and search["objectives"][0]["text"] == "ttft_p99<=180ms"
    assert search["best"] in (7, 8, 9), search  # 8 exactly; one step of slack for a loaded machine
    probes = search["probes"]
    # bracketing starts at 1 and 2, then follows the measured line to its crossing (8.5) and
    # closes the bracket next to it: far fewer probes than a 1..64 sweep (or bisection's 8)
    assert [p["concurrency"] for p in probes[:2]] == [1, 2]
    assert len(probes) <= 6, probes
    for p in probes:  # every verdict follows the known function, away from the frontier
        if p["concurrency"] <= 6:
            assert p["met"], p
        if p["concurrency"] >= 11:
            assert not p["met"] and p["failed"] == ["ttft_p99<=180ms"], p
    # every probe is a level: in summary.json and in perf.sqlite
    assert [r["concurrency"] for r in s["runs"]] == [p["concurrency"] for p in probes]
    assert all("sla" in r for r in s["runs"])
    db = sqlite3.connect(out / "perf.sqlite")
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == len(probes)
    # the answer in one line
    lines = [l for l in proc.stdout.splitlines() if l.startswith("SLA frontier")]
    assert len(lines) == 1 and f"highest concurrency that meets it: {search['best']}" in lines[0]


def synth(ttft: float, rps: float, success_rate: float = 1.0) -> PerfLevel:
    """A level as the SLA search sees it: 10 requests, their TTFT p99 and mean, throughput."""
    return PerfLevel(requests=10, succeeded=round(10 * success_rate), failed=10 - round(10 * success_rate),
                     figures={"ttft_s": Distribution(10, {"p99": ttft, "mean": ttft}), "request_throughput": rps,
                              "success_rate": success_rate})


def run_synthetic(objectives: str, dimension: str, latency, rng: str | None = None, throughput=None):
    search = SLASearch(parse_objectives(objectives), dimension, *parse_range(rng, dimension))
    for load in search.loads():
        search.record(load, synth(latency(load), throughput(load) if throughput else load))
    return search


@pytest.mark.parametrize("dimension, frontier", [("concurrency", 45), ("concurrency", 300), ("rate", 22.5), ("rate", 3.3)])
def test_search_finds_the_frontier_within_5_percent_in_few_probes(dimension, frontier):
    # latency rises linearly and crosses 500 ms exactly at the frontier
    latency = lambda x: 0.5 * x / frontier  # noqa: E731
    search = run_synthetic("ttft_p99<=500ms", dimension, latency)
    assert search.best <= frontier and search.best >= frontier * 0.95 - (1 if dimension == "concurrency" else 0)
    lo, hi = parse_range(None, dimension)
    import math

    fixed_sweep = math.ceil(math.log(hi / lo) / math.log(1.05))  # a grid fine enough for the same 5 %
    assert len(search.probes) < fixed_sweep / 4, (len(search.probes), fixed_sweep)


def test_search_stops_when_the_low_end_misses_saturates_or_fails():
    low_miss = run_synthetic("ttft_p99<=10ms", "concurrency", lambda c: 0.05)
    assert low_miss.best is None and len(low_miss.probes) == 1 and "lowest load" in low_miss.stopped
    assert "no load in range meets it" in low_miss.answer()
    # throughput stops growing after 8 while the SLA still holds: stop, don't climb to 1024
    sat = run_synthetic("ttft_p99<=10s", "concurrency", lambda c: 0.1, throughput=lambda c: min(c, 8.0))
    assert "saturated" in sat.stopped and sat.best == 32 and len(sat.probes) == 6
    # a server that fails most requests stops the search
    failing = SLASearch(parse_objectives("ttft_p99<=1s"), "concurrency", 1, 64)
    gen = failing.loads()
    failing.record(next(gen), synth(0.1, 1))
    failing.record(next(gen), synth(0.1, 1, success_rate=0.2))
    assert list(gen) == [] or failing.best == 1
    assert "failed" in failing.stopped


def test_objectives_in_lmgauge_and_evalscope_forms():
    obj = parse_objectives("ttft_p99<=500ms, tpot_p90<50, latency_mean<=2s, success_rate>=0.99")
    assert [(o.metric, o.stat, o.op, o.value) for o in obj] == [
        ("ttft_s", "p99", "<=", 0.5), ("tpot_s", "p90", "<", 0.05), ("latency_s", "mean", "<=", 2.0),
        ("success_rate", None, ">=", 0.99)]
    es = parse_objectives(None, '[{"p99_ttft": "<=500ms", "avg_tpot": "<0.05s"}]')
    assert [(o.metric, o.stat, o.value) for o in es] == [("ttft_s", "p99", 0.5), ("tpot_s", "mean", 0.05)]
    for bad, needle in (("ttft<=1s", "needs a statistic"), ("speed_p99<=1s", "unknown metric"), ("ttft_p99=1", "cannot read")):
        with pytest.raises(ConfigError, match=needle):
            parse_objectives(bad)
    with pytest.raises(ConfigError, match="LOW:HIGH"):
        parse_range("a:b", "rate")


def test_bad_sla_flags_are_one_line(tmp_path):
    base = ["perf", "--url", "http://127.0.0.1:9/v1/chat/completions", "--model", "m"]
    assert_one_line_error(run_cli(*base, "--sla", "ttft_p99<=1s", env=ENV), "--sla-search")
    assert_one_line_error(run_cli(*base, "--sla-search", "rate", env=ENV), "needs objectives")
    assert_one_line_error(run_cli(*base, "--sla-search", "concurrency", "--sla", "ttft_p99<=1s", "--concurrency", "4",
                                  env=ENV), "chooses the concurrency levels itself")


def level(c, rps):
    return PerfLevel(concurrency=c, rate=None, succeeded=10, requests=10, failed=0, usage_source={"server": 10},
                     figures={"request_throughput": rps, "latency_s": Distribution.of([c / rps])})


def test_the_knee_is_the_smallest_level_near_the_peak():
    # the case: a sweep saturated at 46; 60 gives no more
    runs = [level(10, 50.0), level(30, 95.0), level(46, 100.0), level(60, 100.5)]
    best, advice = best_and_advice(runs)
    assert best["knee"] == {"run": "concurrency 46", "value": 100.0, "peak": 100.5}
    text = " ".join(advice)
    assert "concurrency 46" in text and "serve near concurrency 60" not in text
    # a sweep still climbing has no knee yet
    best, advice = best_and_advice([level(1, 10.0), level(2, 20.0), level(4, 40.0)])
    assert "knee" not in best and any("Not saturated" in a for a in advice)
