"""``lmgauge perf --server-metrics``: the server's Prometheus series scraped during each level,
stored in perf.sqlite beside the requests and summarised in summary.json; a failing scrape is
a warning, never a failed run."""
from __future__ import annotations

import json
import sqlite3

from conftest import run_cli
from test_perf import ENV
from test_server_metrics import metrics_server  # noqa: F401,F811  (fixture)


def test_perf_scrapes_server_metrics_beside_the_client(stream_server, metrics_server, tmp_path):
    url = stream_server("--ttft", "0.02", "--itl", "0.005", "--tokens", "40")
    murl = metrics_server("--flavor", "vllm").url
    out = tmp_path / "run"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--concurrency", "2", "4", "--number", "40",
                   "--server-metrics", murl, "--output", str(out), env=ENV, check=True)
    s = json.loads((out / "summary.json").read_text())
    for run in s["runs"]:
        sm = run["server_metrics"]
        assert sm["family"] == "vllm" and sm["failed"] == 0 and sm["read"] >= 2
        assert {"requests_running", "requests_waiting", "kv_cache_usage"} <= set(sm["series"])
    db = sqlite3.connect(out / "perf.sqlite")
    runs = {r for (r,) in db.execute("SELECT DISTINCT run_id FROM server_series")}
    assert runs == {1, 2}
    # the series share the requests' clock: scrapes fall inside the level (from its start)
    t = [x for (x,) in db.execute("SELECT t_s FROM server_series WHERE run_id = 1 AND series = 'requests_running'")]
    last_sent = db.execute("SELECT MAX(sent_s + latency_s) FROM requests WHERE run_id = 1").fetchone()[0]
    assert min(t) < 0.5 and max(t) <= last_sent + 1.5
    assert "warning" not in proc.stderr


def test_failed_scrapes_are_one_warning_not_a_failed_run(stream_server, metrics_server, tmp_path):
    url = stream_server("--tokens", "8", "--itl", "0.01")
    murl = metrics_server("--flavor", "404").url
    out = tmp_path / "run"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--number", "30", "--server-metrics",
                   murl, "--output", str(out), env=ENV, check=True)
    s = json.loads((out / "summary.json").read_text())
    assert s["runs"][0]["succeeded"] == 30 and s["runs"][0]["server_metrics"]["read"] == 0
    warnings = [l for l in proc.stderr.splitlines() if "server metrics" in l]
    assert len(warnings) == 1 and warnings[0].startswith("lmgauge: warning: server metrics:")
