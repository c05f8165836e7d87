"""A third-party perf metric, pip-installed from the example in docs/plugins.md ("A perf
metric"): output tokens per second per user. Declared once, it shows in the terminal tables,
summary.json, perf.sqlite, report.html, the exporters, and works as an ``--sla`` objective."""
from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import REPO, run_cli
from test_core_plugins import make_dist, pip_install


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    docs = (REPO / "docs" / "plugins.md").read_text()
    start = docs.index("# lmgauge_otps_user.py")
    code = docs[start: docs.index("```", start)]
    root, target = tmp_path_factory.mktemp("dists"), tmp_path_factory.mktemp("site")
    pip_install(target, make_dist(root, "lmgauge-otps-user", "lmgauge_otps_user", code))
    return target


def env(site) -> dict:
    return {"PYTHONPATH": str(site), "LMGAUGE_PLUGINS": "lmgauge_otps_user,openai,openqa,json,sqlite,export_command"}


def test_a_plugin_perf_metric_is_everywhere(site, stream_server, tmp_path):
    # ITL 10 ms, 8 tokens: the user sees (8 tokens) / (latency - TTFT = 7 gaps of 10 ms) ≈ 114 tok/s
    url = stream_server("--ttft", "0.02", "--itl", "0.01", "--tokens", "8")
    out = tmp_path / "run"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--concurrency", "1", "2", "--number", "6",
                   "--output", str(out), env=env(site), check=True)
    # the terminal: a column of the percentile table and of the sweep table
    assert "OTPS/user" in proc.stdout and "P50 OTPS/user" in proc.stdout
    run = json.loads((out / "summary.json").read_text())["runs"][0]
    dist = run["otps_user"]
    assert dist["count"] == 6 and 80 < dist["p50"] < 125, dist
    with sqlite3.connect(out / "perf.sqlite") as db:
        values = [r[0] for r in db.execute("select otps_user from requests where run_id = 1")]
    assert len(values) == 6 and all(40 < v < 130 for v in values), values  # loose: a loaded machine oversleeps
    html = (out / "report.html").read_text()
    # report.html's perf section (lmgauge.app.perfviews, as lmgauge serve): a sweep-table column, a
    # sweep chart and a column of each level's percentile table
    perf = html.split('<section id="perf">', 1)[1].split("</section>", 1)[0]
    head = perf.split('<table class="perf"><thead>', 1)[1].split("</thead>", 1)[0]
    assert '<th class="num">P50 OTPS/user</th>' in head
    assert perf.count('data-chart="otps_user"') == 1
    assert perf.count('<th class="num">OTPS/user</th>') == 2  # the percentile table of each level
    # the exporters: SQLite columns, JSON records
    db_path = tmp_path / "x.sqlite"
    run_cli("export", str(out), "--to", "sqlite,json", "--export-path", str(db_path), env=env(site), check=True)
    with sqlite3.connect(db_path) as db:
        assert db.execute("select otps_user_p50 from perf_levels where level = 0").fetchone()[0] == pytest.approx(dist["p50"])
        assert db.execute("select count(otps_user) from perf_requests").fetchone()[0] == 12
    doc = json.loads((tmp_path / "run.json").read_text())
    assert all(r["otps_user"] for r in doc["requests"])


def test_a_plugin_perf_metric_is_an_sla_objective(site, stream_server, tmp_path):
    # per-user speed falls as load grows: TTFT and ITL both grow with requests in flight here
    url = stream_server("--ttft", "0.005", "--itl", "0.004", "--tokens", "6", "--ttft-per-inflight", "0.004")
    out = tmp_path / "sla"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--sla", "otps_user_p50>=100", "--sla-search",
                   "concurrency", "--sla-range", "1:8", "--number", "8", "--output", str(out), env=env(site), check=True)
    search = json.loads((out / "summary.json").read_text())["sla_search"]
    assert search["objectives"][0] == {"text": "otps_user_p50>=100", "metric": "otps_user", "stat": "p50", "op": ">=",
                                       "value": 100.0}
    assert all(p["values"]["otps_user_p50>=100"] is not None for p in search["probes"])
    assert [line for line in proc.stdout.splitlines() if line.startswith("SLA frontier")]
    bad = run_cli("perf", "--url", url, "--model", "perf-model", "--sla", "otps_user>=100", "--sla-search",
                  "concurrency", "--output", str(tmp_path / "bad"), env=env(site))
    assert bad.returncode != 0 and "needs a statistic" in bad.stderr
