"""lmgauge serve in real Chromium (headless, tests/fixtures/browser.py): the runs page, a run
still going that updates without a reload, model output with <script> and <img onerror>
that never runs, two runs compared with the right/wrong filter, a perf run, the previous
release's folders. ``LMGAUGE_SCREENSHOTS=DIR`` also saves a screenshot of every page."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from fixtures.app_runs import EVIL, copy_v1, live_folder, real_evals, real_perf, record, serving_unchanged
from fixtures.app_server import rid
from fixtures.browser import Browser, chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install chromium)")
SHOTS = os.environ.get("LMGAUGE_SCREENSHOTS")


def shot(page, name: str, height: int = 2400) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(Path(SHOTS) / f"{name}.png", full_height=height)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    runs = root / "runs"
    copy_v1(runs)
    real_evals(root, runs)
    real_perf(runs, "perf-a", tokens=8)
    real_perf(runs, "perf-b", tokens=16, ttft=0.01)
    with serving_unchanged(runs, ignore=("live-run",)) as s, Browser(timeout=40) as b:
        s.browser = b
        yield s


def open_page(site, path: str):
    """A fresh tab, the others closed (each tab's event stream holds one of the ~6
    connections a browser allows an origin)."""
    for t in site.browser.send("Target.getTargets")["targetInfos"]:
        if t["type"] == "page" and t["url"] != "about:blank":
            site.browser.send("Target.closeTarget", {"targetId": t["targetId"]})
    return site.browser.open(site.base + path)


def no_js_error(page) -> None:
    assert page.eval("document.body.getAttribute('data-error')") is None


def test_runs_page_lists_filters_sorts_and_picks_runs_to_compare(site):
    page = open_page(site, "/")
    no_js_error(page)
    ids = page.eval("Array.from(document.querySelectorAll('#runs-body tr')).map(r => r.dataset.id)")
    assert {"runs/eval-a", "runs/eval-b", "runs/perf-a", "runs/v1/eval-a", "runs/v1/perf-sla"} <= set(ids)
    shot(page, "runs-page", 1200)
    page.type("#runs-filter", "perf-")
    page.wait_for("document.querySelectorAll('#runs-body tr').length === 5")  # perf-a, perf-b, v1/perf-*
    page.type("#runs-filter", "")
    page.eval("document.querySelector('#runs-filter').value = ''; document.querySelector('#runs-filter').dispatchEvent(new Event('input'))")
    page.select("#runs-kind", "regrade")
    page.wait_for("document.querySelectorAll('#runs-body tr').length === 1")
    page.select("#runs-kind", "")
    page.click("#runs-table th[data-sort=model]")
    models = page.eval("Array.from(document.querySelectorAll('#runs-body tr td:nth-child(4)')).map(t => t.textContent)")
    assert models == sorted(models)
    assert page.eval("document.querySelector('#compare-btn').disabled") is True
    page.click("input[data-id='runs/eval-a']")
    page.click("input[data-id='runs/eval-b']")
    assert page.eval("document.querySelector('#compare-btn').disabled") is False
    page.click("#compare-btn")
    page.wait_for("location.pathname === '/compare' && document.body.getAttribute('data-ready') === '1'")
    assert "run=runs%2Feval-a" in page.eval("location.search") and "run=runs%2Feval-b" in page.eval("location.search")


def test_model_output_with_script_and_img_onerror_never_runs(site):
    page = open_page(site, f"/runs/{rid('runs/eval-a')}")
    no_js_error(page)
    texts = page.eval("Array.from(document.querySelectorAll('#s-list .resp pre')).map(p => p.textContent)")
    assert EVIL in texts
    assert page.count("#s-list img") == 0 and page.count("#s-list script") == 0 and page.count("#s-list svg") == 0
    page.eval("document.querySelectorAll('#s-list details.th').forEach(d => d.open = true)")
    assert page.eval("Array.from(document.querySelectorAll('#s-list .th pre')).some(p => p.textContent.includes('<svg onload'))")
    page.type("#s-q", "<script>window.__pwned")
    page.wait_for("document.querySelector('#s-total').textContent === '2 matches'")  # both repeats of question a
    page.click("#s-list .sample button.link")  # all repeats side by side
    page.wait_for("document.querySelector('.repeats .cols') && document.querySelectorAll('.repeats .cols .sample').length === 2")
    time.sleep(0.5)
    assert page.eval("typeof window.__pwned") == "undefined"
    shot(page, "run-page-eval")
    cmp = open_page(site, f"/compare?run={rid('runs/eval-a')}&run={rid('runs/eval-b')}")
    cmp.eval("document.querySelectorAll('#c-list button.link').forEach(b => b.click())")
    cmp.wait_for("document.querySelectorAll('#c-list .cols .sample').length >= 6")
    assert cmp.count("#c-list img") == 0
    assert cmp.eval("typeof window.__pwned") == "undefined"


def _outcomes(journal: Path) -> dict[str, str]:
    by_q: dict[str, list[str]] = {}
    for line in journal.read_text().splitlines():
        r = json.loads(line)
        by_q.setdefault(r["sample_id"], []).append("correct" if r["correct"] and not r["truncated"] else "no")
    return {q: "right" if all(s == "correct" for s in v) else "wrong" if "correct" not in v else "mixed"
            for q, v in by_q.items()}


def test_two_runs_compared_with_the_right_wrong_filter(site):
    a, b = _outcomes(site.root / "eval-a" / "samples.jsonl"), _outcomes(site.root / "eval-b" / "samples.jsonl")
    page = open_page(site, f"/compare?run={rid('runs/eval-a')}&run={rid('runs/eval-b')}")
    no_js_error(page)
    assert page.count("#cmp-scores tbody tr") > 0 and page.count(".paired table tbody tr") > 0
    shot(page, "compare-evals")
    labels = page.eval("Array.from(document.querySelectorAll('#c-quick button')).map(b => b.textContent)")
    assert labels[0].startswith("right in ") and ", wrong in " in labels[0]
    for button, (x, y) in ((0, (a, b)), (1, (b, a))):
        page.click(f"#c-quick button:nth-child({button + 1})")
        want = sorted(q for q in x if x[q] == "right" and y.get(q) == "wrong")
        assert want, (x, y)
        page.wait_for(f"location.search.includes('o{button}=right') && "
                      f"document.querySelector('#c-total').textContent.startsWith('{len(want)} question') && "
                      f"JSON.stringify(Array.from(document.querySelectorAll('#c-list .sid')).map(e => e.textContent).sort())"
                      f" === {json.dumps(json.dumps(want, separators=(',', ':')))}")
    assert a and b and any(a[q] != b[q] for q in a)


def test_a_running_eval_updates_without_a_reload(site, tmp_path):
    live = site.root / "live-run"
    writer, lock = live_folder(live, repeats=1, limit=6)
    try:
        for i in range(2):
            writer.append(record(i, 0, True))
        site.wait_for(lambda: any(r["id"] == "runs/live-run" for r in site.json("/api/runs")["runs"]))
        runs_page = open_page(site, "/")  # a tab that goes to the background
        page = site.browser.open(site.base + f"/runs/{rid('runs/live-run')}?sort=new")
        no_js_error(page)
        page.eval("window.__marker = 'same page'")
        assert page.eval("document.querySelector('#st-line').dataset.done") == "2"
        assert page.count("#s-list .sample") == 2
        assert runs_page.eval("document.hidden") is True  # its event stream is let go meanwhile
        for i in range(2, 5):
            writer.append(record(i, 0, i != 3))
        page.wait_for("document.querySelector('#st-line').dataset.done === '5'", timeout=10)
        page.wait_for("document.querySelectorAll('#s-list .sample').length === 5", timeout=10)
        assert page.eval("window.__marker") == "same page"
        assert page.eval("document.querySelector('#s-list .sample .sid').textContent") == "q4"  # newest first
        assert "0.8000" in page.text(".cards")  # 4 of 5 right, recomputed live
        shot(page, "run-page-live")
        runs_page.send("Page.bringToFront")  # shown again: it catches up at once
        runs_page.wait_for("document.querySelector(\"tr[data-id='runs/live-run'] .prog\").textContent.startsWith('5 /')",
                           timeout=10)
        page.send("Page.bringToFront")
        writer.close()
        lock.release()
        page.wait_for("document.querySelector('#st-line').dataset.status === 'interrupted'", timeout=10)
        assert "lmgauge eval --resume" in page.text("#sections")
        assert page.eval("window.__marker") == "same page"
    finally:
        writer.close()
        lock.release()


def test_sample_browser_filters_pages_and_links(site):
    page = open_page(site, f"/runs/{rid('runs/v1/eval-a')}?status=wrong")
    no_js_error(page)
    n_wrong = int(page.text("#s-status button[data-status=wrong] .n"))
    assert page.count("#s-list .sample") == n_wrong and page.count("#s-list .sample.st-wrong") == n_wrong
    page.click("#s-status button[data-status=all]")
    page.wait_for("document.querySelectorAll('#s-list .sample').length === 18")
    assert "status=" not in page.eval("location.search")
    page.select("#s-repeat", "2")
    page.wait_for("document.querySelectorAll('#s-list .sample').length === 6")
    assert "repeat=2" in page.eval("location.search")
    page.select("#s-repeat", "")
    page.select("#s-correct", "right")
    page.wait_for("Array.from(document.querySelectorAll('#s-list .sample')).every(s => !s.classList.contains('st-wrong'))")
    long = open_page(site, f"/runs/{rid('runs/v1/eval-a')}?offset=10")
    assert long.eval("document.querySelector('#s-pager input').value") == "1" or long.count("#s-list .sample") == 8


def test_a_perf_run_and_two_overlaid(site):
    page = open_page(site, f"/runs/{rid('runs/perf-a')}")
    no_js_error(page)
    assert page.count("#perf-table tbody tr") == 2
    headers = page.eval("Array.from(document.querySelectorAll('#perf-table thead th')).map(t => t.textContent)")
    from lmgauge.perf.registry import perf_metrics
    from lmgauge.perf.tables import summary_columns
    from lmgauge.runfolder import load_run

    levels = load_run(site.root / "perf-a").levels
    assert [c[2] for c in summary_columns(levels, perf_metrics())] == headers[4:-1]
    assert page.count("#perf-charts svg.chart") >= 4 and page.count("#timelines details") == 2
    shot(page, "run-page-perf")
    cmp = open_page(site, f"/compare?run={rid('runs/perf-a')}&run={rid('runs/perf-b')}")
    no_js_error(cmp)
    assert cmp.count("#perf-table tbody tr") == 4
    legend = cmp.eval("Array.from(document.querySelectorAll('#perf-charts .chartbox:first-child .legend span span')).length")
    assert legend == 2
    # perf-b ran with --max-tokens 16, perf-a with 8: no B/A, compare's one-line refusal instead
    refused = cmp.text("#perf-compare-refused")
    assert "\n" not in refused.strip() and "the workloads differ: --max-tokens" in refused
    assert cmp.count("#perf-compare table") == 0
    shot(cmp, "compare-perf")


def test_a_finished_eval_shows_how_the_model_reasons(site):
    """report.json's lengths (a row per benchmark and subset, approximate counts marked) and the
    budget chart with its legend, the CI line grey and dashed (classes only: no inline style)."""
    from lmgauge.runfolder import load_run

    bench = load_run(site.root / "eval-a").report.benchmarks[0]
    page = open_page(site, f"/runs/{rid('runs/eval-a')}")
    no_js_error(page)
    assert page.count("#reasoning table.lengths tbody tr") == 1 + len(bench.subset_lengths)
    assert page.text("#reasoning table.lengths tbody tr.overall td:nth-child(6)") == f"{bench.lengths['completion_tokens']['mean']:,.0f}"
    assert page.count("#reasoning .chartbox svg.chart") == 1
    ci = page.eval("getComputedStyle(document.querySelector('#reasoning .legend .ln.dashed')).borderTopStyle")
    color = page.eval("getComputedStyle(document.querySelector('#reasoning .legend .ln.dashed')).borderTopColor")
    assert ci == "dashed" and color == "rgb(100, 116, 139)"
    if bench.lengths.get("token_source") == "approximate":
        assert page.count("#reasoning .pill.approx") == 1 + len(bench.subset_lengths)
    assert page.count(".analytics") == 0
    shot(page, "run-page-reasoning", 1800)


def test_the_previous_release_folders(site):
    for name in ("eval-a", "eval-b", "eval-custom", "regrade-a", "perf-sweep", "perf-sla", "perf-multiturn"):
        page = open_page(site, f"/runs/{rid('runs/v1/' + name)}")
        no_js_error(page)
        assert page.count("#sections .panel") >= 1, name
        if name.startswith(("eval", "regrade")):
            assert page.count("#s-list .sample") > 0 and page.count("#scores table") >= 1, name
        else:
            assert page.count("#perf-table tbody tr") > 0, name
        if name == "perf-sla":
            assert page.count(".sla svg") >= 1
            shot(page, "run-page-perf-sla")
        if name == "eval-a":
            assert page.count("#judge tbody tr") == 2
            shot(page, "run-page-v1-judge", 1600)


def test_a_real_eval_in_progress_updates_the_page_without_a_reload(site, tmp_path):
    import subprocess

    from conftest import LMGAUGE, EvalServer
    from fixtures.app_runs import PLUGINS, math_prompt, write_jsonl

    rows = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(8)]
    data = write_jsonl(tmp_path / "q.jsonl", rows)
    answers = {math_prompt(r["question"]): [f"\\boxed{{{r['answer'] if i % 4 else 0}}}"] for i, r in enumerate(rows)}
    server = EvalServer({"model": "slow", "answers": answers, "delay": 0.6, "max_in_flight": 1}, tmp_path)
    out = site.root / "live-run-real"
    proc = subprocess.Popen([*LMGAUGE, "eval", "--base-url", server.base_url, "--model", "slow", "--benchmark",
                             f"slow=custom_math:{data}", "--concurrency", "1", "--output", str(out), "--no-progress"],
                            env={**os.environ, **PLUGINS}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        site.wait_for(lambda: next((r for r in site.json("/api/runs")["runs"]
                                    if r["id"] == "runs/live-run-real" and r["status"] == "running"), None), 60)
        page = open_page(site, f"/runs/{rid('runs/live-run-real')}")
        no_js_error(page)
        page.eval("window.__marker = 'same page'")
        start = int(page.eval("document.querySelector('#st-line').dataset.done"))
        page.wait_for(f"parseInt(document.querySelector('#st-line').dataset.done) > {start}", timeout=20)
        page.wait_for("document.querySelectorAll('#s-list .sample').length >= 2", timeout=20)
        assert page.eval("window.__marker") == "same page"
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
        page.wait_for("document.querySelector('#st-line').dataset.status === 'complete'", timeout=20)
        page.wait_for("document.querySelectorAll('#s-list .sample').length === 8", timeout=20)
        from lmgauge.runfolder import load_run

        score = load_run(out).report.main_row("slow").score
        assert f"{score:.4f}" in page.text(".cards")
        assert page.eval("window.__marker") == "same page"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        server.stop()
