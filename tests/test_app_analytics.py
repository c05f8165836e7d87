"""lmgauge serve shows what report.html shows of the reasoning analytics, sweeps and perf
comparisons, from the same view functions (lmgauge.app.analyticsviews,
lmgauge.perf.compare.perf_compare_view): a finished eval's token-lengths table (numbers equal
report.json's) and budget charts, "analytics appear when the run finishes" while it runs, a
sweep's verdict, frontier and adjacent comparisons above its variants, and the B/A ratios of two
perf runs (equal to ``compare_perf_runs(...).to_dict()``) or compare's one-line refusal.

Every run is real: ``lmgauge eval`` (a sweep too) against tests/eval_server.py, ``lmgauge perf``
against tests/perf_server.py with different TTFTs, and an eval folder written by the run-folder
library's own writers with hostile model, config and sample texts (fixtures/runfolders.py);
the server is the real ``lmgauge serve`` in its own process."""
from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import EvalServer, run_cli
from fixtures.app_runs import PLUGINS, live_folder, math_prompt, real_perf, record, serving_unchanged, write_jsonl
from fixtures.app_server import Serve, rid

HOSTILE = "<img src=x onerror=alert(1)>"
EVIL_MODEL = 'm<script>window.__pwned="model"</script>'
EVIL_VALUE = "<i>hi</i>"
N = 10
QS = [(f"q{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, N + 1)]
#: per effort: reasoning length (" step" tokens) and how many of the questions (the first k) it gets right
LEVELS = {"low": (60, 2), EVIL_VALUE: (240, 6), "high": (900, 10)}


# -- the runs ------------------------------------------------------------------------------------
def _answer(gold: str, steps: int, right: bool) -> str:
    return "<think>" + " step" * steps + "</think>\\boxed{" + (gold if right else "0") + "}"


def real_eval(root: Path, out: Path) -> None:
    """A real lmgauge eval: four questions, two repeats, one subset named like markup, an evil
    model name; no --tokenizer, so the counts are approximate (cl100k_base)."""
    rows = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i),
             "subset": HOSTILE if i <= 2 else "plain"} for i in range(1, 5)]
    data = write_jsonl(root / "lengths.jsonl", rows)
    answers = {math_prompt(r["question"]): [f"<think>Wait, {r['answer']}." + " ok" * (200 * i) + f"</think>\\boxed{{{r['answer']}}}",
                                            "<think>Hmm." + " ok" * 40 + "</think>\\boxed{0}"]
               for i, r in enumerate(rows, 1)}
    server = EvalServer({"model": EVIL_MODEL, "answers": answers}, root)
    try:
        run_cli("eval", "--base-url", server.base_url, "--model", EVIL_MODEL, "--benchmark", "custom_math",
                "--dataset-path", f"custom_math={data}",
                "--repeats", "2", "--max-tokens", "4096", "--seed", "0", "--output", str(out), "--no-progress",
                env=PLUGINS, check=True)
    finally:
        server.stop()


def real_sweep(root: Path, out: Path) -> None:
    """A real sweep of reasoning_effort on a server that honours it (one value written as markup)."""
    data = write_jsonl(root / "sweep.jsonl", [{"id": a, "question": q, "answer": g} for a, q, g in QS])

    def level(effort: str) -> dict[str, list[str]]:
        steps, k = LEVELS[effort]
        return {math_prompt(q): [_answer(g, steps, i <= k)] for i, (_, q, g) in enumerate(QS, 1)}

    server = EvalServer({"model": "m", "answers": level("low"), "by_effort": {e: level(e) for e in LEVELS}}, root)
    try:
        run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "custom_math", "--dataset-path",
                f"custom_math={data}", "--tokenizer", "cl100k_base", "--seed", "0", "--grading-workers", "1",
                "--output", str(out), "--no-progress", "--sweep", "reasoning_effort=" + ",".join(LEVELS),
                env=PLUGINS, check=True)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from fixtures.runfolders import make_eval_run

    root = tmp_path_factory.mktemp("analytics")
    runs = root / "runs"
    runs.mkdir()
    real_eval(root, runs / "eval-lengths")
    make_eval_run(runs / "evil", model='<img src=x onerror="window.__pwned=1">R1')
    make_eval_run(runs / "newer")  # a report with a per-benchmark section this version does not know
    report = json.loads((runs / "newer" / "report.json").read_text())
    report["benchmarks"][0]["calibration"] = {"ece": 0.125, "bins": {"0.5": {"n": 3, "acc": 0.5}}}
    (runs / "newer" / "report.json").write_text(json.dumps(report))
    real_sweep(root, runs / "sweep")
    real_perf(runs, "perf-fast", tokens=8, ttft=0.0)
    real_perf(runs, "perf-slow", tokens=8, ttft=0.02)
    real_perf(runs, "perf-long", tokens=16, ttft=0.0)  # another workload: --max-tokens 16
    with serving_unchanged(runs) as s:
        yield s


# -- reading the pages -------------------------------------------------------------------------
class Tables(HTMLParser):
    """Every table of a page: its attributes and rows (each row's attributes and cell texts)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"attrs": a, "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append({"attrs": a, "cells": []})
        elif tag in ("td", "th") and self.tables and self.tables[-1]["rows"]:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1]["cells"].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def with_class(self, cls: str) -> list[dict]:
        return [t for t in self.tables if cls in (t["attrs"].get("class") or "").split()]


def section(html: str, sid: str) -> str:
    start = html.index(f'id="{sid}"')
    return html[start:html.index("</section>", start)]


def fmt0(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def pct(v) -> str:
    return "-" if v is None else "<0.1%" if 0 < v < 0.001 else f"{100 * float(v):.1f}%"


def assert_safe(html: str) -> None:
    """Nothing from a run folder became markup; no inline style (the CSP forbids it)."""
    for raw in (HOSTILE, EVIL_MODEL, "<script>window.__pwned", EVIL_VALUE, "<img src=x onerror"):
        assert raw not in html, raw
    assert " style=" not in html


# -- an eval run -------------------------------------------------------------------------------
def test_run_page_shows_the_lengths_table_and_budget_chart(served):
    from lmgauge.runfolder import load_run

    run = load_run(served.root / "eval-lengths")
    bench = run.report.summary("custom_math")
    assert bench.lengths["token_source"] == "approximate" and set(bench.subset_lengths) == {HOSTILE, "plain"}
    html = served.get(f"/runs/{rid('runs/eval-lengths')}").text
    assert_safe(html)
    part = section(html, "reasoning")
    assert "How the model reasons" in part
    tables = Tables(part).with_class("lengths")
    assert len(tables) == 1
    head, *rows = tables[0]["rows"]
    col = {name: i for i, name in enumerate(head["cells"])}
    assert list(col)[:4] == ["Benchmark", "Subset", "Samples", "Counted"]
    want = [("OVERALL", bench.lengths)] + [(name, bench.subset_lengths[name]) for name in sorted(bench.subset_lengths)]
    assert [r["cells"][col["Subset"]] for r in rows] == [name for name, _ in want]  # the hostile name as text
    for r, (name, st) in zip(rows, want):
        cells = r["cells"]
        ct = st["completion_tokens"]
        assert cells[col["Benchmark"]] == "custom_math"
        assert cells[col["Samples"]] == f"{st['samples']:,}" and cells[col["Counted"]] == f"{st['counted']:,}"
        assert cells[col["Tokens"]] == "approximate"  # marked: cl100k_base counts, not the model's
        assert [cells[col[k]] for k in ("Mean", "P50", "P90", "Max")] == [fmt0(ct[k]) for k in ("mean", "p50", "p90", "max")]
        assert cells[col["Trunc. rate"]] == pct(st["truncation_rate"])
        assert cells[col["Tokens / correct"]] == fmt0(st["tokens_per_correct"])
        assert cells[col["Correct"]] == fmt0(st["mean_tokens_correct"])
    assert 'class="pill warn approx"' in part
    # the budget chart: the score line and its 95% CI dashed, a marker per point of report.json's curve
    m = re.search(r'<figure class="chartbox" data-chart="budget-custom_math">(.*?)</figure>', part, re.S)
    assert m, part[-2000:]
    chart = m.group(1)
    assert '<svg class="chart"' in chart and "custom_math: score at max_tokens B" in chart
    assert 'data-series="score"' in chart and chart.count('stroke-dasharray="4 3"') == 2
    scored = [p for p in bench.budget_curve if p.get("score") is not None]
    assert len(scored) >= 2 and chart.count("<circle") == 3 * len(scored)
    assert "95% CI" in chart and "cgrey dashed" in chart  # the legend's grey dashed CI line
    # the generic tables of the analytics are gone (nothing else in this report)
    assert 'class="panel analytics"' not in html


def test_hostile_model_and_config_text_stays_escaped(served):
    for path in (f"/runs/{rid('runs/evil')}", f"/runs/{rid('runs/evil')}/part",
                 f"/compare?run={rid('runs/evil')}&run={rid('runs/eval-lengths')}"):
        r = served.get(path)
        assert r.status == 200, (path, r.status)
        assert_safe(r.text)
    html = served.get(f"/runs/{rid('runs/evil')}").text
    assert "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;R1" in html
    part = section(html, "reasoning")
    assert Tables(part).with_class("lengths")[0]["rows"][1:] and 'data-chart="budget-math_500"' in part
    # the charts' own texts (the legend's run label: the evil model) are escaped in the SVG too
    assert "<img" not in part


def test_a_section_a_newer_report_adds_stays_a_generic_table(served):
    html = served.get(f"/runs/{rid('runs/newer')}").text
    assert html.count('class="panel analytics"') == 1
    generic = html[html.index('class="panel analytics"'):]
    generic = generic[:generic.index("</details>")]
    name = json.loads((served.root / "newer" / "report.json").read_text())["benchmarks"][0]["benchmark"]
    assert f"{name}: analytics" in generic and "calibration" in generic and "0.125" in generic
    assert "lengths" not in generic and "budget" not in generic  # those are "How the model reasons"
    assert 'class="grid lengths small"' in section(html, "reasoning")


def test_a_running_eval_says_analytics_appear_when_it_finishes(tmp_path):
    """The analytics come from report.json: a run still going (here a finished run being resumed:
    its folder's lock held, an older report.json in it) shows none of the old figures, only that
    they come at the end; without the writer the report's figures show."""
    from fixtures.runfolders import make_eval_run
    from lmgauge.runfolder import FolderLock

    runs = tmp_path / "runs"
    make_eval_run(runs / "resumed")
    writer, lock = live_folder(runs / "fresh", repeats=1, limit=4)
    try:
        for i in range(2):
            writer.append(record(i, 0, True))
        again = FolderLock(runs / "resumed", "eval").acquire()
        try:
            with Serve(runs) as s:
                for name in ("fresh", "resumed"):
                    s.wait_for(lambda: s.json(f"/api/runs/{rid('runs/' + name)}")["run"]["status"] == "running")
                    html = s.get(f"/runs/{rid('runs/' + name)}").text
                    part = section(html, "reasoning")
                    assert "analytics appear when the run finishes" in part, name
                    assert "<table" not in part and "<svg" not in part
                again.release()
                s.wait_for(lambda: s.json(f"/api/runs/{rid('runs/resumed')}")["run"]["status"] == "complete")
                part = section(s.get(f"/runs/{rid('runs/resumed')}/part").text, "reasoning")
                assert "analytics appear" not in part and 'class="grid lengths small"' in part
        finally:
            again.release()
    finally:
        writer.close()
        lock.release()


# -- a sweep -----------------------------------------------------------------------------------
def test_sweep_page_shows_the_verdict_frontier_and_comparisons_above_the_variants(served):
    doc = json.loads((served.root / "sweep" / "sweep.json").read_text())
    assert doc["no_effect"] is False
    html = served.get(f"/runs/{rid('runs/sweep')}").text
    assert_safe(html)
    assert html.index('id="sweep-summary"') < html.index('id="variants"')
    part = section(html, "sweep-summary")
    assert "Sweep of reasoning_effort" in part
    verdict = re.search(r'id="sweep-verdict">(.*?)</p>', part, re.S).group(1)
    assert '<span class="pill ok">effect</span>' in verdict
    m = re.search(r'<figure class="chartbox" data-chart="frontier-custom_math">(.*?)</figure>', part, re.S)
    assert m and '<svg class="chart tradeoff"' in m.group(1)
    assert m.group(1).count('class="variant') == len(LEVELS)
    assert "&lt;i&gt;hi&lt;/i&gt;" in m.group(1)  # the value written as markup, escaped in the SVG
    # more tokens bought a higher score each time: every variant on the frontier
    assert m.group(1).count('class="variant front"') == len(LEVELS)
    tables = Tables(part)
    variants = tables.with_class("sweep-variants")[0]["rows"][1:]
    assert [r["cells"][0] for r in variants] == list(LEVELS)
    for r, v in zip(variants, doc["variants"]):
        assert r["cells"][2] == f"{v['scores']['custom_math']['score']:,.4f}"
        assert r["cells"][4] == fmt0(v["lengths"]["custom_math"]["completion_tokens"]["mean"])
    for href in re.findall(r'<a class="mono" href="(/runs/runs%2Fsweep%2F[^"]+)">', part):  # each variant's page
        assert served.get(unescape(href)).status == 200, href
    assert len(re.findall(r'<a class="mono" href="/runs/runs%2Fsweep%2F', part)) == len(LEVELS)
    pairs = tables.with_class("sweep-pairs")[0]["rows"][1:]
    adjacent = [c for c in doc["comparisons"] if c["adjacent"]]
    assert [r["cells"][0] for r in pairs] == [f"{c['a_label']} → {c['b_label']}" for c in adjacent]
    assert 'data-chart="sweep-budget-custom_math"' in part


# -- two perf runs -----------------------------------------------------------------------------
def test_compare_page_of_two_perf_runs_shows_the_ratios_of_lmgauge_compare(served):
    from lmgauge.perf.compare import TEXT_STATS, compare_perf_runs
    from lmgauge.runfolder import load_run

    result = compare_perf_runs(load_run(served.root / "perf-fast"), load_run(served.root / "perf-slow"))
    want = result.to_dict()
    url = f"/compare?run={rid('runs/perf-fast')}&run={rid('runs/perf-slow')}"
    html = served.get(url).text
    assert_safe(html)
    part = section(html, "perf-compare")
    assert str(served.root) not in part  # the runs by their labels, not their paths on disk
    assert re.search(r"<h2>Perf comparison: .*perf-slow \(B\) / .*perf-fast \(A\)</h2>", part)
    tables = Tables(part).with_class("ratios")
    assert [t["attrs"]["data-level"] for t in tables] == [lv["level"] for lv in want["levels"]]
    shown = 0
    for t, lv, lc in zip(tables, want["levels"], result.levels):
        rows = {r["attrs"]["data-metric"]: r["cells"] for r in t["rows"] if "data-metric" in r["attrs"]}
        for name, m in lv["metrics"].items():
            stat = lc.metrics[name].figure.stat
            if stat is not None and stat not in TEXT_STATS:
                assert name not in rows
                continue
            cells = rows[name]
            assert cells[3] == ("-" if m["ratio"] is None else f"{m['ratio']:.3f}"), (lv["level"], name)
            assert cells[4] == ("-" if m["ci_low"] is None else f"{m['ci_low']:.3f}–{m['ci_high']:.3f}"), name
            shown += 1
        # B's TTFT is 20 ms more than A's: a clear verdict, in the table and in words
        ttft = lv["metrics"]["ttft_p50"]
        assert ttft["ratio"] > 1 and ttft["ci_low"] > 1 and "B is worse" in ttft["verdict"]
        assert rows["ttft_p50"][5] == "worse"
        assert unescape(re.search(r"<ul class=\"verdicts\">(.*?)</ul>", part, re.S).group(1)).count(ttft["verdict"]) == 1
    assert shown >= 10
    # the same data is the report's section (one view function for both)
    from lmgauge.perf.compare import compare_section_html

    report = compare_section_html(result)
    for t in Tables(report).with_class("compare"):
        for r in t["rows"][1:]:
            assert r["cells"][3] in part
    # kept per pair: the live update's part answers from the cache, with the same figures
    again = served.get(f"/compare/part?run={rid('runs/perf-fast')}&run={rid('runs/perf-slow')}").text
    assert section(again, "perf-compare") == part


def test_perf_runs_of_other_workloads_get_compares_one_line_refusal(served):
    html = served.get(f"/compare?run={rid('runs/perf-fast')}&run={rid('runs/perf-long')}").text
    part = section(html, "perf-compare")
    m = re.search(r'<p class="notice" id="perf-compare-refused">(.*?)</p>', part, re.S)
    assert m, part
    line = unescape(m.group(1))
    assert "\n" not in line and line.startswith("Not computed: cannot compare runs/perf-fast and runs/perf-long")
    assert "the workloads differ: --max-tokens (output length) differs: A 8, B 16" in line
    assert str(served.root) not in part  # the folders by their ids, not their paths on disk
    assert "ratios" not in part and "<table" not in part
    # the overlaid levels still show
    assert 'id="perf-table"' in html


def test_a_perf_run_still_going_is_compared_when_it_finishes(served, tmp_path):
    import shutil

    from lmgauge.runfolder import FolderLock

    runs = tmp_path / "runs"
    for name in ("perf-fast", "perf-slow"):
        shutil.copytree(served.root / name, runs / name)
    lock = FolderLock(runs / "perf-slow", "perf").acquire()  # as a perf run writing into it holds it
    try:
        with Serve(runs) as s:
            s.wait_for(lambda: s.json(f"/api/runs/{rid('runs/perf-slow')}")["run"]["status"] == "running")
            url = f"/compare/part?run={rid('runs/perf-fast')}&run={rid('runs/perf-slow')}"
            part = section(s.get(url).text, "perf-compare")
            assert "appears when both runs finish" in part and "<table" not in part
            lock.release()
            s.wait_for(lambda: s.json(f"/api/runs/{rid('runs/perf-slow')}")["run"]["status"] != "running")
            part = section(s.get(url).text, "perf-compare")
            assert 'class="grid ratios"' in part and "appears when" not in part
    finally:
        lock.release()
