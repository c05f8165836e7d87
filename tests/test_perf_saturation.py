"""--stop-on-saturation: a level stops once the server cannot keep up (requests in the system and
TTFT both trend upward: Mann–Kendall over 8 batch means, lmgauge.perf.saturation), the sweep
stops climbing there, and a server that keeps up is never stopped.

End to end against tests/perf_server.py: ``--ttft 0.01 --ttft-per-inflight 0.02`` serves at most
50 req/s (TTFT = 10 ms + 20 ms per request in flight), so an open loop of 10 req/s keeps a steady
state and one of 80 req/s queues without end; ``--ttft 0.03`` alone keeps up with any load."""
from __future__ import annotations

import random
import pytest

from conftest import assert_one_line_error, run_cli
from lmgauge.perf.saturation import SaturationDetector, kendall_s, knee_stop, trend_p
from lmgauge.runfolder import Distribution, PerfLevel, load_run

ENV = {"LMGAUGE_PLUGINS": "openai,random,openqa"}


@pytest.fixture
def server(stream_server):
    """tests/perf_server.py with the given flags (conftest's stream_server); its chat URL."""
    return stream_server


def perf(url, out, *args):
    return run_cli("perf", "--url", url, "--model", "perf-model", "--output", str(out), "--stop-on-saturation", *args,
                   env=ENV, check=True)


def test_an_open_loop_past_capacity_stops_at_the_knee(server, tmp_path):
    url = server("--ttft", "0.01", "--ttft-per-inflight", "0.02", "--tokens", "4")
    proc = perf(url, tmp_path / "s", "--rate", "10", "80", "160", "--number", "40", "800", "1600")
    summary = load_run(tmp_path / "s").summary
    assert [lv.rate for lv in summary.runs] == [10.0, 80.0]  # 160 was not run
    below, past = summary.runs
    assert below.stopped is None and below.requests == 40
    stop = past.stopped
    assert stop["test"] == "mann-kendall-8-batches" and stop["p_queue"] <= 0.001 and stop["p_ttft"] <= 0.001
    assert stop["in_system"][1] >= 1.5 * stop["in_system"][0] and stop["ttft_s"][1] >= 1.25 * stop["ttft_s"][0]
    assert 2.5 < stop["at_s"] < 8 and past.requests < 800  # long before the level's 10 s
    assert (past.abandoned_in_flight or 0) > 0 and past.failed == 0  # abandoned requests are no failures
    assert summary.saturation["level"] == "rate 80 req/s" and summary.saturation["skipped"] == ["rate 160"]
    assert "over-saturated after" in proc.stderr and "not run: rate 160" in proc.stdout
    assert "stopped early: over-saturated" in proc.stdout  # the level's note


def test_a_server_that_keeps_up_is_never_stopped(server, tmp_path):
    url = server("--ttft", "0.03", "--tokens", "4")
    perf(url, tmp_path / "ok", "--rate", "20", "100", "--number", "80", "500")  # 4 s and 5 s of load
    summary = load_run(tmp_path / "ok").summary
    assert [lv.stopped for lv in summary.runs] == [None, None] and summary.saturation is None
    assert [lv.requests for lv in summary.runs] == [80, 500]
    # a closed loop keeps its in-flight count: never over-saturated, and throughput keeps growing
    perf(url, tmp_path / "closed", "--concurrency", "2", "8", "32", "--number", "40", "80", "160")
    summary = load_run(tmp_path / "closed").summary
    assert len(summary.runs) == 3 and summary.saturation is None


def test_a_closed_loop_sweep_stops_past_its_knee(server, tmp_path):
    # closed loop at concurrency c: throughput c / (0.01 + 0.02 c) → 33, 44, 48.5, 49.6 req/s
    url = server("--ttft", "0.01", "--ttft-per-inflight", "0.02", "--tokens", "4")
    proc = perf(url, tmp_path / "k", "--concurrency", "1", "4", "16", "64", "128", "--number", "8", "16", "48", "128", "8")
    summary = load_run(tmp_path / "k").summary
    assert [lv.concurrency for lv in summary.runs] == [1, 4, 16, 64]
    sat = summary.saturation
    assert sat["kind"] == "knee" and sat["knee"] == "concurrency 16" and sat["skipped"] == ["concurrency 128"]
    assert "the server saturated at concurrency 16" in proc.stdout


def test_stop_on_saturation_needs_one_client_process():
    proc = run_cli("perf", "--url", "http://127.0.0.1:9/v1/chat/completions", "--model", "m", "--stop-on-saturation",
                   "--workers", "2", env=ENV)
    assert_one_line_error(proc, "--stop-on-saturation", "--workers")


# -- the test itself ---------------------------------------------------------------------------
def test_mann_kendall_exact_p_values():
    assert kendall_s(list(range(8))) == 28 and trend_p(list(range(8))) == pytest.approx(1 / 40320)
    assert trend_p(list(range(8, 0, -1))) == 1.0
    assert trend_p([1, 0, 2, 3, 4, 5, 6, 7]) == pytest.approx(8 / 40320)  # one inversion: 1 + 7 permutations
    assert trend_p([5.0] * 8) > 0.5  # ties: no trend


class Rec:
    def __init__(self, sent, ttft, end):
        self.success, self.sent, self.first_token, self.end = True, sent, sent + ttft, end


def feed(queue, ttft, seconds=10.0, dt=0.05):
    """A detector fed a synthetic level: in-system count queue(t), answers with TTFT ttft(t)."""
    det = SaturationDetector(0.0)
    verdict = None
    for k in range(1, int(seconds / dt) + 1):
        t = k * dt
        det.sample(t, round(queue(t)))
        for _ in range(3):
            det.done(Rec(t - 0.05, ttft(t), t))
        if k % 10 == 0:  # a check every half second
            verdict = det.check(t)
            if verdict is not None:
                break
    return verdict


def test_the_detector_fires_on_growth_and_never_on_noise():
    grow = feed(lambda t: 2 + 10 * t, lambda t: 0.05 + 0.1 * t)
    assert grow is not None and grow["in_system"][1] > grow["in_system"][0]
    assert feed(lambda t: 2 + 10 * t, lambda t: 0.05) is None  # queue grows but TTFT does not: a growing batch
    assert feed(lambda t: 8, lambda t: 0.05 + 0.1 * t) is None  # TTFT grows, the queue does not (closed loop)
    fired = 0
    for s in range(200):  # stationary noise: queue and TTFT jitter around steady values
        r = random.Random(s)
        fired += feed(lambda t: max(0, r.gauss(6, 3)), lambda t: max(0.01, r.gauss(0.1, 0.04)), seconds=12) is not None
    assert fired == 0


def level(c, rps, ttft):
    return PerfLevel(concurrency=c, requests=10, succeeded=10,
                     figures={"request_throughput": rps, "ttft_s": Distribution.of([ttft] * 10)})


def test_the_sweep_knee_rule():
    assert knee_stop([level(8, 40, 0.1), level(16, 41, 0.2)])["knee"] == "concurrency 8"
    assert knee_stop([level(8, 40, 0.1), level(16, 60, 0.2)]) is None      # still 50 % more throughput
    assert knee_stop([level(8, 40, 0.1), level(16, 41, 0.105)]) is None    # no latency paid for it
    assert knee_stop([level(8, 40, 0.1), level(10, 40, 0.2)]) is None      # too small a step to tell
