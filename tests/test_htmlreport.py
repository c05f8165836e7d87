"""The HTML report as a file (self-contained, escaped, no secrets), the terminal tables and the
``lmgauge report`` command; the perf views (timelines with the server's series, SLA frontier,
per-turn table, offered vs achieved rate, endpoints without text) from run folders written by
real ``lmgauge perf`` runs. The DOM is exercised in test_htmlreport_browser.py."""
from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from fixtures.runfolders import (EVIL_JUDGE, EVIL_QUESTION, EVIL_REASONING, EVIL_RESPONSE, folder_state, make_eval_run,
                                 make_perf_run, real_perf_runs, real_workload_runs)

from lmgauge.errors import LmgaugeError
from lmgauge.htmlreport import render_terminal, write_html_report
from lmgauge.htmlreport.page import json_for_script
from lmgauge.redaction import redact
from lmgauge.runfolder import SampleRecord, load_run

DATA_RE = re.compile(r'<script type="application/json" id="lmg-data">(.*?)</script>', re.S)


@pytest.fixture
def folders(tmp_path):
    return {"eval": make_eval_run(tmp_path / "eval-a"), "perf": make_perf_run(tmp_path / "perf-a")}


def test_report_is_self_contained_and_has_no_secrets(folders, tmp_path):
    out = tmp_path / "out" / "r.html"
    path = write_html_report([str(folders["eval"]["dir"]), str(folders["perf"]["dir"])], str(out))
    assert path == str(out)
    html = out.read_text(encoding="utf-8")
    assert "SECRET" not in html and "user:pw@" not in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert unescape(csp).startswith("default-src 'none'") and "'sha256-" in unescape(csp)
    # no external resource of any kind
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<svg" in html and 'class="chart"' in html
    # exactly our two scripts: the data block and the app
    assert len(re.findall(r"<script", html, re.I)) == 2


def test_untrusted_text_cannot_break_out(folders, tmp_path):
    e = folders["eval"]
    out = Path(write_html_report([str(e["dir"])], str(tmp_path / "r.html")))
    html = out.read_text(encoding="utf-8")
    block = DATA_RE.search(html).group(1)
    assert "<" not in block and ">" not in block  # so neither </script> nor <!-- can appear
    data = json.loads(block)
    (run,) = data["eval"]
    texts = {q["text"] for q in run["q"]}
    assert EVIL_QUESTION in texts
    responses = [s["r"] for s in run["s"]]
    assert EVIL_RESPONSE in responses and EVIL_REASONING in [s["th"] for s in run["s"]]
    assert len(run["s"]) == len(e["records"])
    assert [s["st"] for s in run["s"]].count("error") == sum(1 for r in e["records"] if r["error"])
    # raw markup from the data appears nowhere outside the (escaped) block
    assert "onerror=" not in html.replace(block, "")
    assert json.loads(json_for_script({"x": "</script><!-- \u2028 &"})) == {"x": "</script><!-- \u2028 &"}


def test_server_rendered_text_is_escaped(tmp_path):
    evil = '<img src=x onerror="window.__pwned=1">'
    e = make_eval_run(tmp_path / "e", model=evil, benchmarks={"math_500": 3})
    p = make_perf_run(tmp_path / "p", model=evil + "-perf")
    html = Path(write_html_report([str(e["dir"]), str(p["dir"])], str(tmp_path / "r.html"))).read_text()
    assert "<img" not in html
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in html


def test_terminal_tables(folders, tmp_path):
    e2 = make_eval_run(tmp_path / "eval-b", model="Qwen3-1.7B", seed=7)
    p2 = make_perf_run(tmp_path / "perf-b", backend="sglang", speed=2.0)
    one = render_terminal([str(folders["eval"]["dir"])])
    assert "| Model" in one and "| Dataset" in one and "95% CI" in one
    assert "math_500" in one and "OVERALL" in one
    assert "note: math_500: 1 truncated, 1 error of 16 samples" in one
    both = render_terminal([str(folders["eval"]["dir"]), str(e2["dir"])])
    header = both.splitlines()[1]
    assert "DeepSeek-R1-Distill-Qwen-1.5B" in header and "Qwen3-1.7B" in header
    perf = render_terminal([str(folders["perf"]["dir"]), str(p2["dir"])])
    for col in ("Conc.", "RPS", "Avg Lat.(s)", "P99 Lat.(s)", "Gen. toks/s", "Avg TTFT(s)", "P99 TPOT(s)", "Success"):
        assert col in perf
    assert "gpt-oss-20b · openai" in perf and "gpt-oss-20b · sglang" in perf
    assert "Best configuration of gpt-oss-20b · sglang:" in perf and "Highest RPS      concurrency 16" in perf
    assert "91.7%" in perf  # the failed request of the last level
    assert "SECRET" not in one + both + perf


def test_terminal_strips_control_characters(tmp_path):
    e = make_eval_run(tmp_path / "e", model="m\x1b[31mRED\x1b[0m", benchmarks={"math_500": 2})
    text = render_terminal([str(e["dir"])])
    assert "\x1b" not in text and "mRED" in text.replace(" ", "").replace("[31m", "")


def test_bad_folders_are_one_line_errors(tmp_path, folders):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.json").write_text('{"kind": "eval", "results": [')
    for d, needle in ((tmp_path / "missing", "does not exist"), (tmp_path / "empty", "not an lmgauge run folder"),
                      (bad, "not valid JSON")):
        with pytest.raises(LmgaugeError) as info:
            write_html_report([str(d)], str(tmp_path / "x.html"))
        assert needle in info.value.line() and "\n" not in info.value.line()
    with pytest.raises(LmgaugeError, match="no run folder"):
        write_html_report([], str(tmp_path / "x.html"))
    with pytest.raises(LmgaugeError, match="it is a folder"):
        write_html_report([str(folders["eval"]["dir"])], str(tmp_path))


def test_report_command(folders, tmp_path):
    e, p = folders["eval"], folders["perf"]
    before = folder_state(e["dir"])
    proc = run_cli("report", str(e["dir"]), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "| Model" in proc.stdout and proc.stdout.strip().endswith(f"html report: {e['dir'] / 'report.html'}")
    assert (e["dir"] / "report.html").exists()
    after = folder_state(e["dir"])
    after.pop("report.html")
    assert after == before
    out = tmp_path / "both.html"
    proc = run_cli("report", str(e["dir"]), str(p["dir"]), "-o", str(out), "--no-tables", timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"html report: {out}"
    assert_one_line_error(run_cli("report", str(tmp_path / "nope"), timeout=60), "does not exist")
    assert_one_line_error(run_cli("report", str(tmp_path), timeout=60), "not an lmgauge run folder")
    assert_one_line_error(run_cli("report", timeout=60), "missing argument")
    proc = run_cli("report", str(e["dir"]), "-o", "/proc/no-such-dir/r.html", timeout=60)
    assert_one_line_error(proc, "cannot write the report")
    assert proc.stdout == ""  # no tables before a failure


def test_redaction_rules():
    cfg = {"api_key": "k", "max_tokens": 10, "min_tokens": 1, "tokenizer": "Qwen/Qwen3", "HF_TOKEN": "t",
           "headers": ["Authorization: Bearer x", "X-Trace: 1"], "swanlab_key": "s", "client_secret": "c",
           "base_url": "http://u:p@host/v1?api_key=zz&x=1", "note": "sk-abcdefghijklmnop",
           "output_token_throughput": 3.0, "extra": {"password": "p", "nested": [{"token": "t"}]}}
    r = redact(cfg)
    assert r["api_key"] == r["HF_TOKEN"] == r["swanlab_key"] == r["client_secret"] == "***"
    assert r["max_tokens"] == 10 and r["min_tokens"] == 1 and r["tokenizer"] == "Qwen/Qwen3"
    assert r["output_token_throughput"] == 3.0
    assert r["headers"] == ["Authorization: ***", "X-Trace: 1"]
    assert r["base_url"] == "http://***@host/v1?api_key=***&x=1"
    assert r["note"] == "***" and r["extra"] == {"password": "***", "nested": [{"token": "***"}]}


def sample_status(d):
    return SampleRecord.from_dict({"benchmark": "b", "sample_id": "1", "repeat": 0, **d}).status


def test_sample_status():
    assert sample_status({"error": "x", "truncated": True}) == "error"
    assert sample_status({"truncated": True, "correct": True}) == "truncated"
    assert sample_status({"correct": True}) == "correct"
    assert sample_status({"correct": False}) == "wrong"
    assert sample_status({"correct": None, "score": 1.0}) == "correct"
    assert sample_status({"score": 0.0, "grade_detail": "grader error: worker process died"}) == "error"


def test_open_loop_rates_get_their_own_axis(tmp_path):
    closed = make_perf_run(tmp_path / "closed", levels=[1, 8, 32])
    opened = make_perf_run(tmp_path / "open", rates=[0.5, 1.0, 2.0, 4.0], backend="sglang")
    html = Path(write_html_report([str(closed["dir"]), str(opened["dir"])], str(tmp_path / "r.html"))).read_text()
    assert "request rate (req/s)" in html and "concurrency (log scale)" in html
    assert html.count('data-chart="ttft_s"') == 2  # one chart set per axis kind
    text = render_terminal([str(opened["dir"])])
    rows = [line for line in text.splitlines() if line.startswith("|")][1:]
    assert [r.split("|")[2].strip() for r in rows] == ["0.5", "1", "2", "4"]
    assert "rate 4 req/s" in text or "rate 0.5 req/s" in text


def test_perf_section_is_the_apps_perf_view(tmp_path):
    """report.html's perf section renders lmgauge.app.perfviews.perf_view, as lmgauge serve does:
    the same charts, table columns, best rows, best configuration, cards and level blocks."""
    from lmgauge.app.perfviews import PerfRun, perf_view
    from lmgauge.htmlreport.svg import PALETTE
    from lmgauge.runfolder import run_labels

    p = make_perf_run(tmp_path / "p", levels=[1, 8, 32])
    run = load_run(p["dir"])
    view = perf_view([PerfRun(run_labels([run])[0], PALETTE[0], run)])
    html = report_of([p["dir"]], tmp_path / "r.html")
    perf = blocks(html, '<section id="perf">', "</section>")[0]
    sweep = perf.split("<h3>Summary</h3>", 1)[0]
    assert re.findall(r'data-chart="([^"]+)"', sweep) == [c.key for group in view["charts"] for c in group]
    head = blocks(perf, '<table class="perf"><thead>', "</thead>")[0]
    assert [unescape(h) for h in re.findall(r"<th[^>]*>([^<]*)</th>", head)] == [
        "Level", "Conc.", "Rate", "Requests", *view["table"]["headers"], "Failures"]
    rows = blocks(perf, '<table class="perf">', "</table>")[0].split("<tr")[2:]
    assert [r.startswith(' class="best"') for r in rows] == [r["best"] for r in view["table"]["rows"]]
    assert any(r["best"] for r in view["table"]["rows"]) and not all(r["best"] for r in view["table"]["rows"])
    (box,) = view["best"]
    shown = blocks(perf, '<div class="bestbox">', "</ul>")[0]
    for line in box["lines"]:
        assert f"<b>{unescape(line['label'])}</b>{line['level']} ({line['text']} {line['unit']})" in unescape(shown)
    card = blocks(html, '<div class="card perf-card">', "</div>\n</div>")[0]
    (c,) = view["cards"]
    assert [unescape(t) for t in re.findall(r'<span class="big">([^<]*)</span>', card)] == [x["text"] for x in c["lines"]]
    assert perf.count('<details class="level"') == len(view["levels"]) == 3
    assert perf.count('<table class="pct">') == 3


# -- perf views from real runs -------------------------------------------------------------
@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("real-perf")
    return {**real_perf_runs(out), **real_workload_runs(out)}


def report_of(dirs, path) -> str:
    return Path(write_html_report([str(d) for d in dirs], str(path))).read_text(encoding="utf-8")


def blocks(html: str, start: str, end: str) -> list[str]:
    """The pieces of ``html`` from each ``start`` to the next ``end``."""
    return [part.split(end, 1)[0] for part in html.split(start)[1:]]


SERVER_SERIES = ("requests_running", "requests_waiting", "kv_cache_usage", "prefix_cache_hit_rate", "preemptions",
                 "spec_decode_acceptance", "spec_decode_accept_length")


def test_timeline_shows_client_and_server_series_per_level(real_runs, tmp_path):
    run = load_run(real_runs["metrics"])
    series = run.server_series()
    assert sorted(series) == [0, 1] and set(SERVER_SERIES) <= set(series[0])  # the readers
    assert {lv: len(t) for lv, t in run.request_times().items()} == {0: 16, 1: 16}
    assert load_run(real_runs["sla"]).server_series() == {}  # no server_series table: nothing
    html = report_of([real_runs["metrics"]], tmp_path / "r.html")
    levels = blocks(html, '<details class="timeline"', "</details>")
    assert len(levels) == 2 and levels[0].startswith(" open>") and not levels[1].startswith(" open")
    for i, block in enumerate(levels):
        assert f"concurrency {run.levels[i].concurrency}</summary>" in block
        assert "vLLM metrics from http://127.0.0.1:" in block
        for name in SERVER_SERIES:
            if name in series[i]:
                assert block.count(f'data-series="{name}"') == 1, name
        # one TTFT dot per successful request; completions per second
        dots = blocks(block, 'data-series="client_ttft"', "</g>")
        assert len(dots) == 1 and dots[0].count("<circle") == run.levels[i].succeeded
        assert 'data-series="client_throughput"' in block
    # the level's summary of each series; KV-cache usage in percent (the fixture server reports 0.1-0.2)
    kv = run.levels[0].server_metrics["series"]["kv_cache_usage"]
    figures = blocks(levels[0], '<table class="server-figures">', "</table>")[0]
    assert f"<td>kv cache usage</td><td>%</td><td class=\"num\">{100 * kv['mean']:,.2f}</td>" in figures
    # ... and drawn on a 0-100 axis
    kv_chart = blocks(levels[0], 'data-chart="server-cache"', "</svg>")[0]
    assert 'class="ck">100</text>' in kv_chart and "%" in kv_chart


def test_sla_frontier_chart_answer_and_knee(real_runs, tmp_path):
    summary = json.loads((real_runs["sla"] / "summary.json").read_text())
    search = summary["sla_search"]
    html = report_of([real_runs["sla"]], tmp_path / "r.html")
    best = search["best"]
    assert f"highest concurrency that meets it: {best}; {search['stopped']} ({len(search['probes'])} probes)" in html
    chart = blocks(html, '<svg class="chart frontier"', "</svg>")
    assert len(chart) == 1
    met = sum(1 for p in search["probes"] if p["met"])
    assert chart[0].count('class="probe met"') == met
    assert chart[0].count('class="probe missed"') == len(search["probes"]) - met
    assert chart[0].count('class="best"') == 1 and f"best {best}</text>" in chart[0]
    assert 'class="limit"' in chart[0] and "limit ttft_p99&lt;=180ms" in chart[0]
    probes = blocks(html, '<table class="probes">', "</table>")[0]
    assert probes.count("<tr") == 1 + len(search["probes"]) and probes.count('<tr class="best">') == 1
    knee = summary["best"].get("knee")
    if knee:  # a sweep whose throughput flattens names its knee in the at-a-glance card
        card = blocks(html, '<div class="card perf-card">', "</div></section>")[0]
        assert "Knee (≥95% of peak)" in card and knee["run"] in card


def test_turns_ramp_and_endpoints_without_text(real_runs, tmp_path):
    turns = json.loads((real_runs["turns"] / "summary.json").read_text())["runs"][0]
    html = report_of([real_runs["turns"]], tmp_path / "turns.html")
    table = blocks(html, '<table class="turns">', "</table>")[0]
    rows = blocks(table, "<tr><td", "</tr>")
    assert len(rows) == 3 and [r.split("</td>")[0].rsplit(">", 1)[1] for r in rows] == ["1", "2", "3"]
    hits = [t["prefix_cache_hit_rate"]["mean"] for t in turns["turns"]]
    assert hits[0] == 0 and hits[2] > hits[1] > 0  # the server's prefix cache: later turns reuse more
    assert f"{100 * hits[2]:.1f}%" in rows[2]
    level = blocks(html, '<details class="level"', "</details>")
    assert len(level) == 1 and level[0].startswith(' id="lvl-0" open>') and '<table class="turns">' in level[0]
    assert "sessions: 6/6 completed every turn" in level[0]  # the level's notes, as the terminal prints them
    turn_head = blocks(table, "<thead>", "</thead>")[0]
    assert all(h in turn_head for h in ("Avg TTFT (s)", "P50 TTFT (s)", "P99 TTFT (s)", "Avg cached tok", "Prefix-cache hit"))

    ramp = json.loads((real_runs["ramp"] / "summary.json").read_text())["runs"][0]
    html = report_of([real_runs["ramp"]], tmp_path / "ramp.html")
    assert 'data-chart="ttft_s"' not in html  # one ramp level: no sweep to chart
    rate = blocks(html, 'data-chart="timeline-rate"', "</svg>")
    assert len(rate) == 1 and all(f'data-series="{k}"' in rate[0] for k in ("offered", "achieved", "finished"))
    assert f"<summary>{ramp['label']}</summary>" in html and f'<td class="num">{ramp["label"]}</td>' in html

    html = report_of([real_runs["embeddings"]], tmp_path / "emb.html")
    head = blocks(html, '<table class="perf"><thead>', "</thead>")[0]
    assert "TTFT" not in head and "TPOT" not in head and "Input toks/s" in head and "Inputs/s" in head
    assert 'data-chart="ttft_s"' not in html and 'data-chart="input_token_throughput"' in html
    assert 'data-series="client_ttft"' not in html and "Highest input throughput" in html


EVIL = '<img src=x onerror="window.__pwned=1">'


def test_new_sections_escape_untrusted_text(tmp_path):
    """Judge model, benchmark and answer, endpoint URLs and errors, level labels, server metrics
    URL and warning, SLA objectives and the knee: all shown as text."""
    e = make_eval_run(tmp_path / "e", judge=EVIL, benchmarks={EVIL: 3})
    rep = json.loads((e["dir"] / "report.json").read_text())
    rep["endpoints"] = [{"url": f"http://a/{EVIL}", "requests": 3, "ok": 2, "failures": 1, "last_error": EVIL},
                        {"url": "http://b/v1", "requests": 3, "ok": 3, "failures": 0}]
    (e["dir"] / "report.json").write_text(json.dumps(rep))
    p = make_perf_run(tmp_path / "p", levels=[1, 2, 4])
    s = json.loads((p["dir"] / "summary.json").read_text())
    s["runs"][0].update(label=EVIL, server_metrics={"url": EVIL, "family": EVIL, "read": 1, "scrapes": 2, "warning": EVIL},
                        turns=[{"turn": EVIL, "requests": 1, "succeeded": 1}], sessions={"completed": EVIL, "sessions": 1})
    s["runs"][1]["timeline"] = [{"t": 0.0, "offered": 1.0, "achieved": 1.0, "finished": 1.0}]
    s["best"]["knee"] = {"run": EVIL, "value": 3.0, "peak": 3.1}
    s["sla_search"] = {"objectives": [{"text": EVIL, "metric": EVIL, "stat": "p99", "op": "<=", "value": 0.1}],
                       "dimension": "concurrency", "best": 2, "stopped": EVIL,
                       "probes": [{"concurrency": c, "met": c < 4, "failed": [] if c < 4 else [EVIL], "values": {EVIL: 0.03 * c}}
                                  for c in (1, 2, 4)]}
    (p["dir"] / "summary.json").write_text(json.dumps(s))
    html = report_of([e["dir"], p["dir"]], tmp_path / "r.html")
    block = DATA_RE.search(html).group(1)
    assert EVIL_JUDGE in [s["jt"] for s in json.loads(block)["eval"][0]["s"]]
    outside = html.replace(block, "")
    assert "<img" not in outside and "onerror=\"" not in outside
    escaped = "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;"
    for where in ('class="judge-h"', '<table class="endpoints">', '<details class="timeline"', '<div class="sla"',
                  '<table class="turns">', '<div class="card perf-card">', '<table class="perf">', '<details class="level"',
                  '<div class="bestbox">'):
        section = blocks(outside, where, "</section>")[0]
        assert escaped in section or escaped.replace("&#34;", "&quot;") in section, where
    assert len(re.findall(r"<script", html, re.I)) == 2


def report_data(path: Path) -> dict:
    return json.loads(DATA_RE.search(path.read_text(encoding="utf-8")).group(1))


def test_report_cuts_long_texts_and_full_samples_keeps_them(tmp_path, monkeypatch):
    """Long texts are cut to head and tail with their full length; a run too large for the
    budget embeds an even spread of its samples and says so; --full-samples keeps everything."""
    import lmgauge.htmlreport.page as page

    e = make_eval_run(tmp_path / "long", benchmarks={"math_500": 20}, repeats=3, response_chars=30_000, evil=False,
                      errors=0, truncated=0)
    longest = max((r["response"] for r in e["records"]), key=len)
    monkeypatch.setattr(page, "TEXT_BUDGET", 60 * 2 * 5_000)  # 60 samples × 2 texts × 5,000 characters
    cut = tmp_path / "cut.html"
    write_html_report([str(e["dir"])], str(cut))
    data = report_data(cut)["eval"][0]
    assert len(data["s"]) == data["total"] == 60
    for s in data["s"]:
        full = next(r["response"] for r in e["records"] if r["repeat"] == s["rp"]
                    and r["sample_id"] == data["q"][s["qi"]]["id"])
        assert s["rn"] == len(full) and s["r"].startswith(full[:3_750]) and s["r"].endswith(full[-1_250:])
        assert f"… {len(full) - 5_000:,} characters cut: full text in `lmgauge serve` …" in s["r"]
    html = cut.read_text(encoding="utf-8")
    assert "Long texts are cut" in html and "even spread" not in html and max(len(s["r"]) for s in data["s"]) < 5_100

    monkeypatch.setattr(page, "TEXT_BUDGET", 10 * 2 * page.MIN_CUT)  # room for 10 samples at the least cut
    spread = tmp_path / "spread.html"
    write_html_report([str(e["dir"])], str(spread))
    data = report_data(spread)["eval"][0]
    assert data["total"] == 60 and len(data["s"]) == 10
    assert len({(s["qi"], s["rp"]) for s in data["s"]}) == 10 and all(len(s["r"]) < page.MIN_CUT + 80 for s in data["s"])
    assert "10 of 60 samples" in unescape(spread.read_text(encoding="utf-8"))

    full = tmp_path / "full.html"
    run_cli("report", str(e["dir"]), "-o", str(full), "--full-samples", "--no-tables", check=True)
    data = report_data(full)["eval"][0]
    assert len(data["s"]) == 60 and all("rn" not in s for s in data["s"])
    assert longest in [s["r"] for s in data["s"]] and "Long texts are cut" not in full.read_text(encoding="utf-8")
