"""The HTML report in headless Chromium (DevTools protocol over a pipe, tests/fixtures/browser.py):
tables present, filters and search change the visible rows, injected markup stays text and
never runs, perf charts drawn, several runs side by side, a 728×5 run with 20k-character
responses stays usable, the judge's verdicts, and the perf views of real ``lmgauge perf`` runs
(timeline with the server's series, SLA frontier). Screenshots land in each test's tmp folder.

Skipped with a reason when no Chromium is installed (apt-get install chromium)."""
from __future__ import annotations

from collections import Counter

import pytest

from fixtures.browser import Browser, chromium_path
from fixtures.runfolders import (EVIL_JUDGE, EVIL_QUESTION, EVIL_REASONING, EVIL_RESPONSE, make_eval_run, make_perf_run,
                                 real_perf_runs)

from lmgauge.htmlreport import write_html_report
from lmgauge.runfolder import SampleRecord, load_run


def sample_status(rec: dict) -> str:
    return SampleRecord.from_dict(rec).status

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="chromium is not installed (apt-get install chromium): browser tests skipped")


@pytest.fixture(scope="module")
def browser():
    with Browser(timeout=60) as b:
        yield b


def open_report(browser, dirs, out):
    write_html_report([str(d) for d in dirs], str(out))
    before = len(browser.events)
    page = browser.open(out.resolve().as_uri())
    page.events_from = before
    return page


def js_errors(browser, page) -> list:
    return [e for e in browser.events[page.events_from:]
            if e.get("method") in ("Runtime.exceptionThrown",)
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")]


def visible(page) -> int:
    return page.count("#samples .sample")


def set_status(page, status):
    page.click(f'#f-status button[data-status="{status}"]')
    page.wait_for(f'document.querySelector(\'#f-status button[data-status="{status}"]\').classList.contains("on")')


def search(page, text, expect_count_text):
    page.type("#f-search", text)
    page.wait_for(f"document.getElementById('sample-count').textContent.indexOf({expect_count_text!r}) >= 0", timeout=5)


def test_eval_report_filters_search_and_escaping(browser, tmp_path):
    e = make_eval_run(tmp_path / "eval-run", benchmarks={"math_500": 6, "gpqa_diamond": 4}, repeats=2, seed=5)
    page = open_report(browser, [e["dir"]], tmp_path / "report.html")
    recs = e["records"]
    status = Counter(sample_status(r) for r in recs)
    assert len(recs) == 20 and status["error"] == 1 and status["truncated"] == 1

    # tables
    assert page.count("table.scores tbody tr") == len(e["report"]["results"])
    assert page.count("table.scores tr.overall") == 2
    assert page.count("table.health tbody tr") == 2
    overall = next(r for r in e["report"]["results"] if r["subset"] == "OVERALL")  # the first benchmark's
    row = page.text("table.scores tbody tr.overall")
    assert f"{overall['score']:.4f}" in row and f"[{overall['ci_low']:.3f}, {overall['ci_high']:.3f}]" in row
    assert page.count("#glance .card") == 2

    # all samples fit on one page: 20
    assert visible(page) == 20
    assert page.text("#sample-count").startswith("samples 1–20 of 20")
    for st in ("correct", "wrong", "truncated", "error"):
        assert page.text(f'#f-status button[data-status="{st}"] .n') == str(status[st])
        set_status(page, st)
        assert visible(page) == status[st], st
        assert page.count(f"#samples .sample.s-{st}") == status[st]
    set_status(page, "error")
    assert "HTTP 500 from server" in page.text("#samples .sample .errline")

    # benchmark filter combined with a status
    set_status(page, "all")
    page.select("#f-bench", "gpqa_diamond")
    page.wait_for("document.getElementById('sample-count').textContent.indexOf('of 8') >= 0")
    assert visible(page) == 8
    assert page.eval("[...document.querySelectorAll('#samples .sample')].every(e => e.dataset.benchmark === 'gpqa_diamond')")
    set_status(page, "correct")
    assert visible(page) == sum(1 for r in recs if r["benchmark"] == "gpqa_diamond" and sample_status(r) == "correct")
    set_status(page, "all")
    page.select("#f-bench", "")

    # search: a sample id (2 repeats), then text only inside one response
    search(page, "test/math_500/0003.json", "of 2 ")
    assert visible(page) == 2
    search(page, "window.__pwned='img'", "of 2 ")  # the evil response: repeat 0 of both benchmarks' first question
    assert visible(page) == 2
    search(page, "math_500 #5", "of 2 ")
    assert visible(page) == 2
    search(page, "no such text anywhere", "no samples match")
    assert visible(page) == 0
    search(page, "compute 1+1", "of 4 ")  # the evil question, case-insensitive, both benchmarks × 2 repeats

    # untrusted text rendered as text, never run
    assert page.eval("window.__pwned") is None
    assert page.count("#samples img, #samples script, #samples svg, #samples b") == 0
    questions = page.eval("[...document.querySelectorAll('#samples pre.question')].map(e => e.textContent)")
    assert questions and set(questions) == {EVIL_QUESTION}
    responses = page.eval("[...document.querySelectorAll('#samples pre.response')].map(e => e.textContent)")
    assert EVIL_RESPONSE in responses
    # reasoning collapsed until clicked
    assert page.eval("document.querySelector('#samples details.reasoning').open") is False
    page.click("#samples details.reasoning summary")
    page.wait_for("document.querySelector('#samples details.reasoning').open")
    assert page.eval("document.querySelector('#samples details.reasoning pre').textContent") == EVIL_REASONING
    assert page.eval("window.__pwned") is None

    # nothing fetched from anywhere, no JS errors
    assert page.eval("performance.getEntriesByType('resource').length") == 0
    assert js_errors(browser, page) == []
    page.type("#f-search", "")
    page.wait_for("document.getElementById('sample-count').textContent.indexOf('of 20') >= 0")
    shot = page.screenshot(tmp_path / "eval-report.png", full_height=2200)
    assert shot.stat().st_size > 20_000


def test_perf_report_charts_table_best(browser, tmp_path):
    p = make_perf_run(tmp_path / "perf-run", levels=[1, 10, 50, 100], requests=10)
    page = open_report(browser, [p["dir"]], tmp_path / "report.html")
    charts = ["output_token_throughput", "request_throughput", "ttft_s", "tpot_s", "latency_s"]
    for key in charts:
        assert page.count(f'.chartbox[data-chart="{key}"] svg.chart') == 1, key
    # one line per series; one marker per level and series (p50/p90/p99 for latencies)
    assert page.count('.chartbox[data-chart="request_throughput"] svg path') == 1
    assert page.count('.chartbox[data-chart="request_throughput"] svg circle') == 4
    assert page.count('.chartbox[data-chart="ttft_s"] svg path') == 3
    assert page.count('.chartbox[data-chart="ttft_s"] svg circle') == 12
    ticks = page.eval("[...document.querySelectorAll('.chartbox[data-chart=ttft_s] text.ck')].map(e => e.textContent)")
    assert {"1", "10", "50", "100"} <= set(ticks)
    assert "log scale" in page.text('.chartbox[data-chart="ttft_s"] svg')
    assert page.count("table.perf tbody tr") == 4
    first = page.eval("[...document.querySelectorAll('table.perf tbody tr')[0].cells].map(c => c.textContent)")
    lv = p["summary"]["runs"][0]
    # Level, Conc., Rate, Requests, then the declared sweep columns (RPS first)
    assert first[0] == "concurrency 1" and first[1] == "1" and first[3] == str(lv["requests"])
    assert first[4] == f"{lv['request_throughput']:,.2f}"
    # per level: one block each (closed: several levels), its percentile table (10%..99%, mean)
    assert page.count("details.level") == 4 and page.eval("document.querySelector('details.level').open") is False
    assert page.count("details.level:first-of-type table.pct tbody tr") == 11
    assert page.text("details.level:first-of-type table.pct tr.overall td") == "mean"
    best = page.text(".bestbox")
    top = max(p["summary"]["runs"], key=lambda r: r["request_throughput"])
    fast = min(p["summary"]["runs"], key=lambda r: r["latency_s"]["mean"])
    assert f"Highest RPSconcurrency {top['concurrency']} (" in best
    assert f"Lowest latency (mean)concurrency {fast['concurrency']} (" in best
    assert page.count("table.perf tbody tr.best") >= 2
    assert p["summary"]["recommendations"] and all(r[:40] in best for r in p["summary"]["recommendations"])
    assert page.count("#samples") == 0 and js_errors(browser, page) == []
    page.screenshot(tmp_path / "perf-report.png", full_height=1800)


def test_side_by_side_runs(browser, tmp_path):
    a = make_eval_run(tmp_path / "eval-A", model="model-A", seed=1, accuracy=0.8)
    b = make_eval_run(tmp_path / "eval-B", model="model-B", seed=2, accuracy=0.3)
    pa = make_perf_run(tmp_path / "perf-vllm", backend="vllm", seed=3)
    pb = make_perf_run(tmp_path / "perf-sglang", backend="sglang", seed=4, speed=1.6)
    page = open_report(browser, [a["dir"], b["dir"], pa["dir"], pb["dir"]], tmp_path / "compare.html")
    head = page.text("table.scores thead")
    assert "model-A" in head and "model-B" in head and "Δ" in head
    assert page.count("#eval table.scores tbody tr") == len(a["report"]["results"])
    # the paired comparison of the two eval runs: OVERALL of math_500, gpqa_diamond and ALL
    assert page.count("#compare table.compare tbody tr.overall") == 3
    legend = page.text('.chartbox[data-chart="ttft_s"] .legend')
    assert "gpt-oss-20b · vllm p50" in legend and "gpt-oss-20b · sglang p99" in legend
    assert page.count('.chartbox[data-chart="ttft_s"] svg path') == 4
    assert page.count("table.perf tbody tr") == 6 and page.count(".bestbox") == 2
    assert page.text("#sample-count").endswith(f"of {len(a['records']) + len(b['records'])} · page 1/2")
    page.select("#f-run", "1")
    page.wait_for(f"document.getElementById('sample-count').textContent.indexOf('of {len(b['records'])} ') >= 0")
    assert visible(page) == len(b["records"])
    assert page.eval("[...document.querySelectorAll('#samples .sample .sh .mut')].every(e => !e.textContent.includes('model-A'))")
    assert js_errors(browser, page) == []
    page.screenshot(tmp_path / "compare.png", full_height=2600)


def test_large_run_stays_usable(browser, tmp_path):
    """728 questions × 5 repeats, 20,000-character responses (a 73 MB journal): the report cuts
    each long text to head and tail with its full length shown, stays under 10 MB and pages."""
    e = make_eval_run(tmp_path / "big", benchmarks={"math_500": 500, "gpqa_diamond": 198, "aime24": 30},
                      repeats=5, response_chars=20_000, seed=9)
    assert len(e["records"]) == 3640
    assert (e["dir"] / "samples.jsonl").stat().st_size > 70_000_000
    out = tmp_path / "big.html"
    page = open_report(browser, [e["dir"]], out)
    assert out.stat().st_size <= 10_000_000
    assert visible(page) == 25
    assert page.text("#sample-count") == "samples 1–25 of 3640 · page 1/146"
    assert "full texts: lmgauge serve" in page.text("#samples-bound").lower()
    page.click("#pg-next")
    page.wait_for("document.getElementById('sample-count').textContent.indexOf('samples 26–50') === 0")
    assert visible(page) == 25
    search(page, "test/aime24/0007.json", "of 5 ")
    assert visible(page) == 5
    shown = page.eval("document.querySelector('#samples pre.response').textContent")
    full = next(r for r in e["records"] if r["sample_id"] == "test/aime24/0007.json")["response"]
    assert len(shown) < 2_000 and shown.startswith(full[:500]) and shown.endswith(full[-200:])
    assert f"{len(full) - len(shown.split(chr(10))[0]) - len(shown.split(chr(10))[-1]):,} characters cut: full text in `lmgauge serve`" in shown
    label = page.eval("document.querySelector('#samples .blk.resp .lab').textContent")
    assert label == f"Response ({len(full):,} chars, cut to head and tail here: full text in lmgauge serve)"
    assert js_errors(browser, page) == []
    page.screenshot(tmp_path / "big.png", full_height=1400)


def test_judge_table_and_verdicts(browser, tmp_path):
    e = make_eval_run(tmp_path / "judged", benchmarks={"math_500": 4, "gpqa_diamond": 3}, judge="judge-model", seed=3)
    page = open_report(browser, [e["dir"]], tmp_path / "judged.html")
    judge = e["report"]["judge"]
    assert page.count("table.judge tbody tr") == 3  # two benchmarks and OVERALL
    overall = page.eval("[...document.querySelector('table.judge tr.overall').cells].map(c => c.textContent)")
    ag = judge["overall"]["agreement"]
    assert overall[1] == str(judge["overall"]["judged"]) and overall[8] == str(ag["samples"])
    assert overall[9] == f"{100 * ag['agreement']:.1f}%" and overall[10] == f"{ag['kappa']:,.3f}"
    verdicts = page.eval("[...document.querySelectorAll('#samples .sample .judge')].map(e => e.textContent)")
    judged = [r for r in e["records"] if r.get("judge_verdict")]
    assert sorted(verdicts) == sorted(f"judge: {r['judge_verdict']}" for r in judged)
    search(page, "looks right", "of 1 ")  # the judge's answer is searchable
    page.click("#samples details.judge-text summary")
    page.wait_for("document.querySelector('#samples details.judge-text').open")
    assert page.eval("document.querySelector('#samples details.judge-text pre').textContent") == EVIL_JUDGE
    assert page.eval("window.__pwned") is None and page.count("#samples img") == 0
    assert js_errors(browser, page) == []


@pytest.fixture(scope="module")
def real_perf(tmp_path_factory):
    return real_perf_runs(tmp_path_factory.mktemp("real-perf"))


def test_real_perf_timeline_and_sla_frontier(browser, real_perf, tmp_path):
    """Run folders written by lmgauge perf: --server-metrics against metrics_server (vLLM) and an
    --sla-search whose frontier is concurrency 8."""
    import json

    page = open_report(browser, [real_perf["metrics"], real_perf["sla"]], tmp_path / "perf.html")
    # CSP intact, only our two scripts, nothing fetched, no error
    csp = page.eval("document.querySelector('meta[http-equiv=Content-Security-Policy]').content")
    assert csp.startswith("default-src 'none'") and "script-src 'sha256-" in csp
    assert page.count("script") == 2 and page.eval("performance.getEntriesByType('resource').length") == 0

    # timeline: one block per level (2 + the SLA probes), the first open with the server's series
    search_ = json.loads((real_perf["sla"] / "summary.json").read_text())["sla_search"]
    assert page.count("details.timeline") == 2 + len(search_["probes"])
    first = "document.querySelectorAll('details.timeline')[0]"
    assert page.eval(f"{first}.open") is True
    stored = load_run(real_perf["metrics"]).server_series()[0]
    for name in ("requests_running", "requests_waiting", "kv_cache_usage", "prefix_cache_hit_rate", "preemptions"):
        d = page.eval(f"(function(){{var e={first}.querySelector('path[data-series={name}]');"
                      "return e && e.getBoundingClientRect().bottom > 0 ? e.getAttribute('d') : null;})()")
        assert d is not None and d.count("L") + 1 == len(stored[name]), name  # one vertex per scrape stored
    assert page.eval(f"{first}.querySelectorAll('[data-chart=timeline-throughput] circle').length") >= 1  # 1 s bins
    dots = page.eval(f"{first}.querySelectorAll('g[data-series=client_ttft] circle').length")
    assert dots == 16
    # the second level opens on a click and draws its series too
    second = "document.querySelectorAll('details.timeline')[1]"
    assert page.eval(f"{second}.open") is False
    page.click("details.timeline:nth-of-type(2) > summary")
    page.wait_for(f"{second}.open")
    assert page.eval(f"{second}.querySelector('path[data-series=requests_running]').getBoundingClientRect().width") > 0

    # SLA frontier: met and missed probes, the best one ringed where its probe is
    met = sum(1 for p in search_["probes"] if p["met"])
    assert page.count(".sla svg.frontier circle.probe.met") == met
    assert page.count(".sla svg.frontier circle.probe.missed") == len(search_["probes"]) - met
    ring = page.eval("(function(){var b=document.querySelector('.sla svg.frontier circle.best');"
                     "return [b.getAttribute('cx'), b.getAttribute('cy')];})()")
    best_probe = page.eval("[...document.querySelectorAll('.sla svg.frontier circle.probe.met')]"
                           ".map(c => [c.getAttribute('cx'), c.getAttribute('cy')])")
    assert ring in best_probe  # the ring sits on a met probe: the highest load that met the SLA
    assert f"best {search_['best']}" in page.text(".sla svg.frontier")
    assert f"highest concurrency that meets it: {search_['best']};" in page.text(".sla .answer")
    assert page.count(".sla table.probes tbody tr.best") == 1
    assert js_errors(browser, page) == []
    page.eval("document.querySelector('.sla').scrollIntoView()")
    page.screenshot(tmp_path / "perf-views.png", full_height=4000)
