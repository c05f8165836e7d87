"""Server metrics (--server-metrics): parsing each server's /metrics page, the normalised series
and their derived rates, failures as one warning, the scraper against a real server, and the
perf.sqlite tables. Pages come from tests/metrics_server.py, which writes vLLM's, SGLang's,
TGI's and lmdeploy's documented metric names in their exposition format."""
from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lmgauge.errors import ConfigError
from lmgauge.perf.server_metrics import (ScrapeResult, ServerMetricsScraper, create_tables, metrics_url,
                                         parse_metrics, read_pages, scrape_headers, store, summary)

HERE = Path(__file__).resolve().parent


class MetricsServer:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "metrics_server.py"), *args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/metrics"

    def page(self, n: int) -> str:
        with urllib.request.urlopen(f"{self.url}?n={n}") as resp:
            return resp.read().decode()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def metrics_server():
    servers: list[MetricsServer] = []

    def start(*args: str) -> MetricsServer:
        servers.append(MetricsServer(*args))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def pages_result(texts: list[str], times: list[float]) -> ScrapeResult:
    return read_pages(ScrapeResult("http://h/metrics", 1.0), zip(times, texts))


def values(res: ScrapeResult, series: str) -> list[float]:
    return [round(v, 9) for _, v in res.series[series]]


def raw(res: ScrapeResult, name: str, **labels: str) -> list[float]:
    key = (name, tuple(sorted(labels.items())))
    return res.raw[key]


# -- where to scrape ---------------------------------------------------------------------
def test_metrics_url_from_the_perf_url_or_given():
    assert metrics_url("http://h:8000/v1/chat/completions") == "http://h:8000/metrics"
    assert metrics_url("https://api.example.com/v1/completions") == "https://api.example.com/metrics"
    assert metrics_url("http://h:8000/v1") == "http://h:8000/metrics"
    assert metrics_url("http://h:8000/v1/chat/completions", "http://other:9400/prom/metrics") == "http://other:9400/prom/metrics"
    assert metrics_url(None, "http://other:9400") == "http://other:9400/metrics"
    with pytest.raises(ConfigError, match="not an http"):
        metrics_url("http://h:8000/v1", "other:9400/metrics")
    with pytest.raises(ConfigError, match="no --url"):
        metrics_url(None)


def test_headers_only_to_the_same_host():
    headers = {"Authorization": "Bearer sk-secret", "Content-Type": "application/json", "X-Team": "a"}
    same = scrape_headers("http://h:8000/metrics", "http://h:8000/v1/chat/completions", headers)
    assert same == {"Authorization": "Bearer sk-secret", "X-Team": "a"}
    assert scrape_headers("http://other:8000/metrics", "http://h:8000/v1/chat/completions", headers) == {}
    assert scrape_headers("http://h:9000/metrics", "http://h:8000/v1/chat/completions", headers) == {}


# -- each server's page, normalised ------------------------------------------------------
def test_vllm_two_engines(metrics_server):
    srv = metrics_server("--flavor", "vllm", "--engines", "2")
    res = pages_result([srv.page(n) for n in range(3)], [10.0, 11.0, 12.5])
    assert res.family == "vllm" and res.times == [10.0, 11.0, 12.5]
    # gauges summed over the two engines: running (n+1) + (n+2), waiting 2n + (2n+1)
    assert values(res, "requests_running") == [3, 5, 7]
    assert values(res, "requests_waiting") == [1, 5, 9]
    # ratios are the mean over engines: 0.1+0.01n and 0.2+0.01n
    assert values(res, "kv_cache_usage") == [0.15, 0.16, 0.17]
    # counter-based series start at the second scrape: 2 engines x 25 hits / 100 queries
    assert values(res, "prefix_cache_hit_rate") == [0.25, 0.25]
    # 2 engines x 2 preemptions per scrape, over 1 s then 1.5 s
    assert values(res, "preemptions") == [4.0, round(4 / 1.5, 9)]
    assert values(res, "spec_decode_acceptance") == [0.7, 0.7]
    assert values(res, "spec_decode_accept_length") == [2.75, 2.75]
    assert [t for t, _ in res.series["preemptions"]] == [11.0, 12.5]
    # raw: every series kept per label set, histograms as _sum/_count without buckets
    assert raw(res, "vllm:num_requests_running", engine="1", model_name="fixture/model") == [2, 3, 4]
    assert raw(res, "vllm:time_to_first_token_seconds_count", engine="0", model_name="fixture/model") == [0, 1, 2]
    assert raw(res, "lmgauge_fixture_custom", kind="x") == [0, 1.5, 3.0]
    assert not any(name.endswith(("_bucket", "_created")) for name, _ in res.raw)
    assert res.warning() is None


def test_sglang_priority_breakdown_not_double_counted(metrics_server):
    srv = metrics_server("--flavor", "sglang")
    res = pages_result([srv.page(n) for n in range(3)], [0.0, 2.0, 4.0])
    assert res.family == "sglang"
    assert values(res, "requests_running") == [1, 2, 3]      # the priority="" totals only
    assert values(res, "requests_waiting") == [0, 2, 4]
    assert values(res, "kv_cache_usage") == [0.1, 0.11, 0.12]
    assert values(res, "prefix_cache_hit_rate") == [0.25, 0.25, 0.25]
    assert values(res, "preemptions") == [1.0, 1.0]            # 2 retractions per 2 s
    assert values(res, "spec_decode_acceptance") == [0.7, 0.7, 0.7]
    assert values(res, "spec_decode_accept_length") == [2.75, 2.75, 2.75]
    # the per-priority breakdown is kept raw
    lab = dict(engine_type="unified", model_name="fixture/model", pp_rank="0", tp_rank="0")
    assert raw(res, "sglang:num_running_reqs", priority="1", **lab) == [1, 2, 3]
    assert not any(name.endswith("_created") for name, _ in res.raw)


def test_tgi_and_lmdeploy(metrics_server):
    tgi = metrics_server("--flavor", "tgi")
    res = pages_result([tgi.page(n) for n in range(2)], [0.0, 1.0])
    assert res.family == "tgi"
    assert values(res, "requests_running") == [1, 2]
    assert values(res, "requests_waiting") == [0, 2]
    assert set(res.series) == {"requests_running", "requests_waiting"}  # TGI exports no cache gauges
    assert raw(res, "tgi_batch_inference_duration_count", method="decode") == [0, 10]

    lmd = metrics_server("--flavor", "lmdeploy", "--engines", "3")
    res = pages_result([lmd.page(n) for n in range(2)], [0.0, 1.0])
    assert res.family == "lmdeploy"
    assert values(res, "requests_running") == [6, 9]           # (n+1)+(n+2)+(n+3)
    assert values(res, "kv_cache_usage") == [0.2, 0.21]        # mean of 0.1, 0.2, 0.3 (+0.01n)
    assert values(res, "prefix_cache_hit_rate") == [0.25, 0.25]
    assert values(res, "spec_decode_acceptance") == [0.7]
    assert values(res, "spec_decode_accept_length") == [2.75]
    assert "preemptions" not in res.series                     # lmdeploy exports none


def test_unknown_server_kept_raw():
    page = ("# HELP acme_queue_depth Requests queued.\n# TYPE acme_queue_depth gauge\n"
            'acme_queue_depth{pool="a"} 3\nacme_queue_depth{pool="b"} 4\n'
            "# TYPE acme_tokens_total counter\nacme_tokens_total 100\n")
    res = pages_result([page, page.replace("} 3", "} 5")], [0.0, 1.0])
    assert res.family is None and res.series == {}
    assert raw(res, "acme_queue_depth", pool="a") == [3, 5]
    assert raw(res, "acme_tokens_total") == [100, 100]
    assert summary(res)["family"] == "unknown"


def test_deprecated_vllm_names_and_counter_reset():
    def page(usage: float, hits: float, queries: float, preempt: float) -> str:
        return ("# TYPE vllm:gpu_cache_usage_perc gauge\n"
                f'vllm:gpu_cache_usage_perc{{engine="0",model_name="m"}} {usage}\n'
                "# TYPE vllm:gpu_prefix_cache_hits_total counter\n"
                f'vllm:gpu_prefix_cache_hits_total{{engine="0",model_name="m"}} {hits}\n'
                "# TYPE vllm:gpu_prefix_cache_queries_total counter\n"
                f'vllm:gpu_prefix_cache_queries_total{{engine="0",model_name="m"}} {queries}\n'
                "# TYPE vllm:num_preemptions_total counter\n"
                f'vllm:num_preemptions_total{{engine="0",model_name="m"}} {preempt}\n')

    # the server restarts between the second and third scrape: that interval has no rate
    pages = [page(0.5, 0, 0, 10), page(0.6, 30, 40, 20), page(0.0, 1, 10, 5), page(0.1, 2, 20, 7)]
    res = pages_result(pages, [0.0, 1.0, 2.0, 3.0])
    assert values(res, "kv_cache_usage") == [0.5, 0.6, 0.0, 0.1]
    assert res.series["prefix_cache_hit_rate"] == [(1.0, 0.75), (3.0, 0.1)]
    assert res.series["preemptions"] == [(1.0, 10.0), (3.0, 2.0)]
    # no queries in an interval: no hit rate for it (not 0, not a division by zero)
    res = pages_result([page(0.5, 5, 10, 0), page(0.5, 5, 10, 0)], [0.0, 1.0])
    assert "prefix_cache_hit_rate" not in res.series
    assert res.series["preemptions"] == [(1.0, 0.0)]


def test_new_vllm_names_win_over_deprecated_ones(metrics_server):
    srv = metrics_server("--flavor", "vllm", "--engines", "1")
    extra = ("# TYPE vllm:gpu_cache_usage_perc gauge\n"
             'vllm:gpu_cache_usage_perc{engine="0",model_name="fixture/model"} 0.99\n')
    res = pages_result([srv.page(0) + extra, srv.page(1) + extra], [0.0, 1.0])
    assert values(res, "kv_cache_usage") == [0.1, 0.11]


# -- bad pages -------------------------------------------------------------------------------
def test_garbage_pages_are_errors_not_crashes():
    for text in ["<!doctype html><html><body>It works</body></html>", '{"status": "ok"}', "", "\n\n"]:
        with pytest.raises(ValueError, match="not Prometheus text"):
            parse_metrics(text)
    samples, skipped = parse_metrics("# TYPE a gauge\na 1\nthis is { not a sample\nb{x=\"1\"} 2\n")
    assert [(s.name, s.labels, s.value) for s in samples] == [("a", (), 1.0), ("b", (("x", "1"),), 2.0)]
    assert skipped == 1
    res = pages_result(["a 1\nbroken line here\n", "<html>", "a 2\n"], [0.0, 1.0, 2.0])
    res.attempts = 3
    assert raw(res, "a") == [1, 2] and res.times == [0.0, 2.0]
    warning = res.warning()
    assert warning.startswith("server metrics: 1 of 3 scrapes failed (page is not Prometheus text, it starts '<html>'")
    assert "1 of 3 pages had unreadable lines" in warning and warning.count("\n") == 0


def run_scraper(url: str, seconds: float, **kw) -> ScrapeResult:
    async def go() -> ScrapeResult:
        scraper = ServerMetricsScraper(url, **kw)
        await scraper.start()
        await asyncio.sleep(seconds)
        return await scraper.stop()

    return asyncio.run(go())


# -- the scraper against a real server ---------------------------------------------------------
def test_scraper_collects_every_second(metrics_server):
    srv = metrics_server("--flavor", "vllm")
    res = run_scraper(srv.url, 2.2)  # scrapes at ~0, 1, 2 s and one more at stop
    assert res.family == "vllm" and res.failures == 0 and res.warning() is None
    n = len(res.times)
    assert 2 <= n == res.attempts <= 6  # the first and the last scrape at least, however loaded the machine
    assert res.times == sorted(res.times)
    # the server counts its scrapes: n-th scrape shows running 2n+3 (two engines)
    assert values(res, "requests_running") == [2 * k + 3 for k in range(n)]
    assert len(res.series["prefix_cache_hit_rate"]) == n - 1
    for (t, rate), t_prev in zip(res.series["preemptions"], res.times):
        assert rate * (t - t_prev) == pytest.approx(4.0)  # 2 engines x 2 per scrape
    s = summary(res)
    assert s["family"] == "vllm" and s["scrapes"] == s["read"] == n and s["failed"] == 0
    assert s["series"]["requests_running"] == {"mean": n + 2, "max": 2 * n + 1, "last": 2 * n + 1, "points": n}


def test_scraper_failures_are_one_warning(metrics_server):
    srv = metrics_server("--flavor", "404")
    res = run_scraper(srv.url, 0.5, interval=0.2)
    assert res.attempts >= 2 and res.failures == res.attempts and res.times == []
    w = res.warning()
    assert w.startswith(f"server metrics: all {res.attempts} scrapes failed (HTTP 404 at {srv.url})")
    assert w.endswith("the run's client figures are unaffected")
    assert summary(res)["warning"] == w and summary(res)["series"] == {}

    garbage = metrics_server("--flavor", "garbage")
    res = run_scraper(garbage.url, 0.3, interval=0.2)
    assert res.failures == res.attempts and "page is not Prometheus text" in res.warning()

    flaky = metrics_server("--flavor", "sglang", "--fail-every", "2")  # every 2nd scrape: HTTP 500
    res = run_scraper(flaky.url, 1.0, interval=0.2)
    assert res.failures == res.attempts - len(res.times) and res.failures >= 1
    assert f"{res.failures} of {res.attempts} scrapes failed (HTTP 500 at {flaky.url})" in res.warning()
    assert values(res, "requests_running") == [1 + 2 * k for k in range(len(res.times))]  # n = 0, 2, 4, ...

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_scraper(f"http://127.0.0.1:{port}/metrics", 0.3, interval=0.2)
    assert res.failures == res.attempts >= 1 and "ClientConnectorError" in res.warning()


def test_scraper_timeout_and_secret_free_warning():
    async def go() -> ScrapeResult:
        async def silent(reader, writer):  # accepts and never answers
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        scraper = ServerMetricsScraper(f"http://user:hunter2@127.0.0.1:{port}/metrics", interval=0.1, timeout=0.2)
        await scraper.start()
        await asyncio.sleep(0.3)
        result = await scraper.stop()
        server.close()
        return result

    res = asyncio.run(go())
    assert res.failures == res.attempts >= 2 and "timed out" in res.warning()
    assert "hunter2" not in res.warning() and "hunter2" not in json.dumps(summary(res))


def test_scraper_in_a_thread(metrics_server):
    srv = metrics_server("--flavor", "tgi")
    scraper = ServerMetricsScraper(srv.url, interval=0.2)
    scraper.start_thread()
    import time

    time.sleep(0.5)  # the caller blocks (as a --workers run does); the thread scrapes
    res = scraper.stop_thread()
    assert res.family == "tgi" and len(res.times) >= 2
    assert values(res, "requests_running") == [k + 1 for k in range(len(res.times))]


# -- perf.sqlite ----------------------------------------------------------------------------
def test_store_and_read_back(metrics_server, tmp_path):
    srv = metrics_server("--flavor", "vllm", "--engines", "1")
    res = pages_result([srv.page(n) for n in range(3)], [100.0, 101.0, 102.0])
    db = sqlite3.connect(tmp_path / "perf.sqlite")
    create_tables(db)
    store(db, 1, res, origin=100.5)
    store(db, 1, res, origin=100.5)  # again: replaces, no duplicates
    store(db, 2, pages_result([srv.page(7)], [200.0]), origin=200.0)
    db.close()

    db = sqlite3.connect(tmp_path / "perf.sqlite")
    rows = db.execute("SELECT t_s, value FROM server_series WHERE run_id = 1 AND series = 'requests_running' "
                      "ORDER BY t_s").fetchall()
    assert rows == [(-0.5, 1.0), (0.5, 2.0), (1.5, 3.0)]
    rows = db.execute("SELECT t_s, value FROM server_series WHERE run_id = 1 AND series = 'prefix_cache_hit_rate' "
                      "ORDER BY t_s").fetchall()
    assert rows == [(0.5, 0.25), (1.5, 0.25)]
    rows = db.execute("SELECT t_s, labels_json, value FROM server_metrics WHERE run_id = 1 AND "
                      "name = 'vllm:num_preemptions_total' ORDER BY t_s").fetchall()
    assert [(t, json.loads(lab), v) for t, lab, v in rows] == [
        (t, {"engine": "0", "model_name": "fixture/model"}, v) for t, v in [(-0.5, 0.0), (0.5, 2.0), (1.5, 4.0)]]
    n_raw = sum(sum(1 for v in col if v == v) for col in res.raw.values())
    assert db.execute("SELECT COUNT(*) FROM server_metrics WHERE run_id = 1").fetchone() == (n_raw,)
    assert db.execute("SELECT value FROM server_series WHERE run_id = 2 AND series = 'requests_running'").fetchall() == [(8.0,)]
    db.close()
