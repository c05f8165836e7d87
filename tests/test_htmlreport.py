"""The HTML report as a file (self-contained, escaped, no secrets), the terminal tables and the
``lmgauge report`` command. The DOM is exercised in test_htmlreport_browser.py."""
from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from fixtures.runfolders import EVIL_QUESTION, EVIL_REASONING, EVIL_RESPONSE, folder_state, make_eval_run, make_perf_run

from lmgauge.errors import LmgaugeError
from lmgauge.htmlreport import render_terminal, write_html_report
from lmgauge.htmlreport.page import json_for_script
from lmgauge.htmlreport.rundata import redact, sample_status

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


def test_sample_status():
    assert sample_status({"error": "x", "truncated": True}) == "error"
    assert sample_status({"truncated": True, "correct": True}) == "truncated"
    assert sample_status({"correct": True}) == "correct"
    assert sample_status({"correct": False}) == "wrong"
    assert sample_status({"correct": None, "score": 1.0}) == "correct"


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
