"""lmgauge serve without a browser: discovery, the JSON API, live runs, search, security.

Every server is the real ``lmgauge serve`` in its own process on 127.0.0.1; run folders are
made by real ``lmgauge eval``/``perf`` runs against the test servers, by the run-folder
library's own writers (JournalWriter, FolderLock, new_manifest) for runs still going, and the
committed folders of the previous release (tests/data/runs_v1, copied: read only)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from fixtures.app_runs import (KEY, V1, copy_v1, live_folder, math_prompt, real_evals, real_perf, record, serving_unchanged,
                               write_jsonl)
from fixtures.app_server import Events, Serve, rid


def expected_rows(path: Path, repeats: int, planned: dict | None = None):
    """What the report will say, computed from the journal by the report's own function."""
    from lmgauge.eval.report import build_results
    from lmgauge.eval.runner import plan_metrics
    from lmgauge.plugins import get_manager
    from lmgauge.runfolder import read_samples
    from types import SimpleNamespace

    metrics = plan_metrics(SimpleNamespace(metric=[], options={}), get_manager())
    rows, summaries = build_results(read_samples(path / "samples.jsonl"), metrics, repeats, planned or {}, None)
    return [r.to_dict() for r in rows], [s.to_dict() for s in summaries]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server over: a copy of the previous release's folders, two real eval runs (one with
    evil answers, run with a real API key), a real perf run and a careless writer's folder."""
    from fixtures.runfolders import make_eval_run

    root = tmp_path_factory.mktemp("served")
    runs = root / "runs"
    copy_v1(runs)
    real_evals(root, runs)
    real_perf(runs, "perf-a")
    make_eval_run(runs / "careless")  # a raw key and an Authorization header in config.yaml
    with serving_unchanged(runs) as s:
        yield s


# -- the start-up line, discovery -------------------------------------------------------------
def test_startup_line_is_one_plain_line(served):
    assert served.line == f"lmgauge serve: http://127.0.0.1:{served.port}/\n"
    assert served.token is None


def test_runs_api_lists_every_run_folder_with_status_and_scores(served):
    runs = {r["id"]: r for r in served.json("/api/runs")["runs"]}
    want = {"runs/v1/eval-a", "runs/v1/eval-b", "runs/v1/eval-custom", "runs/v1/regrade-a", "runs/v1/perf-sweep",
            "runs/v1/perf-sla", "runs/v1/perf-multiturn", "runs/eval-a", "runs/eval-b", "runs/perf-a"}
    assert want <= set(runs), set(runs)
    assert "runs/v1/expected" not in runs  # not a run folder
    for r in runs.values():
        assert set(r) >= {"id", "path", "kind", "model", "status", "done", "total", "created", "scores"}
        assert r["status"] == "complete", r
    assert runs["runs/v1/regrade-a"]["kind"] == "regrade"
    assert runs["runs/perf-a"]["kind"] == "perf" and runs["runs/perf-a"]["done"] == 2
    assert runs["runs/v1/eval-a"]["path"] == "v1/eval-a"
    from lmgauge.runfolder import load_run

    for rid_ in ("runs/v1/eval-a", "runs/v1/eval-custom", "runs/eval-a"):
        report = load_run(served.root / runs[rid_]["path"]).report
        want_scores = {r.benchmark: (r.score, r.ci_low, r.ci_high) for r in report.results
                       if r.subset == "OVERALL" and r.metric == "AveragePass@1"}
        assert {s["benchmark"]: (s["score"], s["ci_low"], s["ci_high"]) for s in runs[rid_]["scores"]} == want_scores


def test_run_api_results_are_the_reports(served):
    from lmgauge.runfolder import load_run

    for name in ("v1/eval-a", "v1/eval-b", "v1/eval-custom", "v1/regrade-a", "eval-a"):
        data = served.json(f"/api/runs/{rid('runs/' + name)}")
        report = load_run(served.root / name).report
        assert data["results"] == [r.to_dict() for r in report.results]
        assert data["benchmarks"] == [b.to_dict() for b in report.benchmarks]
        assert data["live"] is False
        assert data["config"].get("api_key") in (None, "***")
    perf = served.json(f"/api/runs/{rid('runs/perf-a')}")
    assert len(perf["levels"]) == 2 and {m["key"] for m in perf["metrics"]} >= {"ttft_s", "request_throughput"}


def test_ids_accept_percent_encoding_and_unknown_ids_are_404(served):
    assert served.get("/api/runs/runs%2Fv1%2Feval-a").status == 200
    assert served.get("/api/runs/runs%2fv1%2feval-a").status == 200
    for path in ("/api/runs/runs/v1/eval-a", "/api/runs/nope", "/api/runs/nope/samples", "/runs/nope", "/runs/",
                 "/runs", "/api/run", "/api/runs/", "/anything", "/index.html", "/runs/runs%2Fv1%2Feval-a/",
                 "/static/", "/static/nope.js", "/compare/x"):
        r = served.get(path)
        assert r.status == 404, (path, r.status)
        assert b"<script" not in r.body


def test_the_paired_comparison_from_the_index_is_lmgauge_compare(served):
    """The compare page pairs runs from the app's index (no texts read): the same result as
    lmgauge compare on the folders."""
    from lmgauge.app.journal import EvalJournal
    from lmgauge.app.views import paired_view, with_index
    from lmgauge.eval.compare import compare_runs
    from lmgauge.runfolder import load_run

    for a, b in (("v1/eval-a", "v1/eval-b"), ("eval-a", "eval-b")):
        ra, rb = load_run(served.root / a), load_run(served.root / b)
        ja, jb = EvalJournal(ra.path / "samples.jsonl", 3), EvalJournal(rb.path / "samples.jsonl", 3)
        ja.follow(), jb.follow()
        assert compare_runs(with_index(ra, ja), with_index(rb, jb)).to_dict() == compare_runs(ra, rb).to_dict()
        page = served.get(f"/compare?run={rid('runs/' + a)}&run={rid('runs/' + b)}").text
        for row in paired_view(ra, rb)["rows"]:
            assert row["verdict"].replace("'", "&#39;") in page


# -- samples -----------------------------------------------------------------------------------
def journal_records(path: Path):
    from lmgauge.runfolder import read_samples

    return list(read_samples(path / "samples.jsonl"))


def test_samples_api_fields_filters_and_paging(served):
    recs = journal_records(served.root / "v1/eval-a")
    base = f"/api/runs/{rid('runs/v1/eval-a')}/samples"
    page = served.json(base + "?limit=100")
    assert page["total"] == len(recs) == 18 and page["offset"] == 0 and len(page["samples"]) == 18
    s = page["samples"][0]
    for field in ("benchmark", "sample_id", "repeat", "status", "correct", "score", "question", "gold", "extracted",
                  "response", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens"):
        assert field in s
    by_status = {}
    for r in recs:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    assert page["counts"] == {k: by_status.get(k, 0) for k in ("correct", "wrong", "truncated", "error")}
    for status, n in by_status.items():
        got = served.json(base + f"?status={status}&limit=100")
        assert got["total"] == n and {x["status"] for x in got["samples"]} == {status}
    rep1 = served.json(base + "?repeat=1&limit=100")
    assert rep1["total"] == sum(1 for r in recs if r.repeat == 1) and {x["repeat"] for x in rep1["samples"]} == {1}
    right = served.json(base + "?correct=right&limit=100")
    assert right["total"] == sum(1 for r in recs if r.correct is True and r.status != "error")
    sub = served.json(base + "?subset=Algebra&limit=100")
    assert sub["total"] == sum(1 for r in recs if "Algebra" in r.subsets)
    one = served.json(base + f"?sample_id={recs[0].sample_id}&limit=100")
    assert {x["sample_id"] for x in one["samples"]} == {recs[0].sample_id} and one["total"] == 3
    # paging: every sample exactly once, in the same order as one big page
    seen = []
    for off in range(0, 18, 5):
        seen += [(x["sample_id"], x["repeat"]) for x in served.json(base + f"?offset={off}&limit=5")["samples"]]
    assert seen == [(x["sample_id"], x["repeat"]) for x in page["samples"]]
    assert served.json(base + "?offset=100")["samples"] == []
    for bad in ("status=bogus", "repeat=x", "limit=0", "limit=100000", "offset=-1", "correct=maybe", "sort=up"):
        r = served.get(base + "?" + bad)
        assert r.status == 400 and "error" in r.json(), bad
    perf = served.get(f"/api/runs/{rid('runs/perf-a')}/samples")
    assert perf.status == 404


def test_samples_cut_long_texts_with_their_full_length(tmp_path):
    from lmgauge.runfolder import new_manifest, write_samples

    run = tmp_path / "runs" / "long"
    run.mkdir(parents=True)
    new_manifest("eval").write(run)
    long = "think " * 5000
    write_samples(run / "samples.jsonl", [record(1, 0, True, reasoning=long, reasoning_tokens=7)])
    with Serve(tmp_path / "runs") as s:
        full = s.json(f"/api/runs/{rid('runs/long')}/samples")["samples"][0]
        cut = s.json(f"/api/runs/{rid('runs/long')}/samples?cut=1000")["samples"][0]
    assert full["reasoning"] == long and full["cut"] is False
    assert cut["cut"] is True and cut["reasoning_chars"] == len(long) and len(cut["reasoning"]) < 1100
    assert cut["reasoning"].startswith("think think") and cut["reasoning"].endswith("think ")


def test_search_is_case_insensitive_exact_and_ignores_superseded_lines(tmp_path):
    from lmgauge.runfolder import JournalWriter, new_manifest

    run = tmp_path / "runs" / "s"
    run.mkdir(parents=True)
    new_manifest("eval").write(run)
    w = JournalWriter(run / "samples.jsonl")
    texts = ['plain ASCII Needle here', 'quote " and back\\slash and\nnew line', 'Ünïcödé ÉCOLE straße',
             'the word response appears', 'OLD text', '<script>alert(1)</script>']
    for i, t in enumerate(texts):
        w.append(record(i, 0, i % 2 == 0, text=t))
    w.append(record(4, 0, True, text="NEW text"))  # supersedes "OLD text"
    w.close()
    with Serve(tmp_path / "runs") as s:
        def hits(q):
            from urllib.parse import quote
            return sorted(x["sample_id"] for x in s.json(f"/api/runs/{rid('runs/s')}/samples?limit=100&q={quote(q)}")["samples"])

        assert hits("needle") == hits("NEEDLE") == ["q0"]
        assert hits('quote " and back\\slash') == ["q1"]
        assert hits("and\nnew") == ["q1"]
        assert hits("école") == hits("ÉCOLE") == ["q2"]
        assert hits("üNÏ") == ["q2"]
        assert hits("response") == ["q3"]  # a key of every line, but only q3's texts hold it
        assert hits("old text") == [] and hits("new TEXT") == ["q4"]
        assert hits("<SCRIPT>") == ["q5"]
        assert hits("What is 3 + 3") == ["q3"]  # the question
        assert hits("thinking about 2") == ["q2"]  # the reasoning
        assert hits("nothing like this") == []


def test_search_agrees_with_a_scan_of_every_record(served):
    from urllib.parse import quote

    recs = journal_records(served.root / "v1/eval-a")
    for q in ("evelyn", "BOXED", "\\frac", "12345", "<img", "the"):
        want = sorted((r.sample_id, r.repeat) for r in recs
                      if any(q.lower() in (v if isinstance(v, str) else json.dumps(v)).lower()
                             for v in (r.question, r.gold, r.extracted, r.response, r.reasoning, r.judge_text) if v is not None))
        got = served.json(f"/api/runs/{rid('runs/v1/eval-a')}/samples?limit=100&q={quote(q)}")
        assert sorted((x["sample_id"], x["repeat"]) for x in got["samples"]) == want, q


# -- live runs ---------------------------------------------------------------------------------
def test_a_running_eval_is_followed_live(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with Serve(runs) as s:
        ev = Events(s, "?run=" + rid("runs/live"))
        writer, lock = live_folder(runs / "live", repeats=2, limit=5)
        first = s.wait_for(lambda: next((r for r in s.json("/api/runs")["runs"] if r["id"] == "runs/live"), None))
        assert first["status"] == "running" and first["done"] == 0 and first["total"] == 10
        assert first["writer"]["pid"] == os.getpid()
        for i in range(3):
            writer.append(record(i, 0, i != 1))
        t0 = time.monotonic()
        got = None
        while time.monotonic() - t0 < 5:
            e = ev.next(timeout=5)
            if e and e["run"]["done"] == 3:
                got = e
                break
        assert got is not None, "no event for the appended lines"
        run = s.json(f"/api/runs/{rid('runs/live')}")
        rows, summaries = expected_rows(runs / "live", 2)
        assert run["live"] is True and run["results"] == rows
        assert run["run"]["scores"][0]["score"] == pytest.approx(2 / 3)
        # a torn last line is skipped until it is complete
        torn = record(3, 0, True).to_json() + b"\n"
        with open(runs / "live" / "samples.jsonl", "ab") as fh:
            fh.write(torn[:50])
            fh.flush()
            time.sleep(1.0)
            assert s.json(f"/api/runs/{rid('runs/live')}")["run"]["done"] == 3
            fh.write(torn[50:])
            fh.flush()
        s.wait_for(lambda: s.json(f"/api/runs/{rid('runs/live')}")["run"]["done"] == 4)
        # a later line for a key supersedes the earlier one
        writer.append(record(1, 0, True))
        s.wait_for(lambda: s.json(f"/api/runs/{rid('runs/live')}")["run"]["scores"][0]["score"] == 1.0)
        assert s.json(f"/api/runs/{rid('runs/live')}")["results"] == expected_rows(runs / "live", 2)[0]
        page = s.json(f"/api/runs/{rid('runs/live')}/samples?sort=new")
        assert [x["sample_id"] for x in page["samples"]][:1] == ["q3"]
        # the writer goes away without finishing: interrupted, with the command that continues it
        writer.close()
        lock.release()
        done = s.wait_for(lambda: next((r for r in s.json("/api/runs")["runs"] if r["status"] == "interrupted"), None))
        assert done["resume"] == f"lmgauge eval --resume {runs / 'live'}"
        ev.close()


def test_a_running_perf_level_shows_its_figures_so_far(tmp_path, stream_server):
    """A real lmgauge perf whose level lasts ~10 s: while it runs, the API and the run page show
    summary.json's ``current`` (requests done of the total, TTFT so far); once it ends, the
    level's own figures replace them."""
    from conftest import LMGAUGE

    url = stream_server("--ttft", "0.5", "--itl", "0.001", "--tokens", "4")
    runs = tmp_path / "runs"
    runs.mkdir()
    out = runs / "perf-live"
    with Serve(runs) as s:
        proc = subprocess.Popen([*LMGAUGE, "perf", "--url", url, "--model", "perf-model", "--output", str(out),
                                 "--concurrency", "1", "--number", "20", "--dataset", "random", "--min-prompt-length",
                                 "16", "--max-prompt-length", "16", "--max-tokens", "4"],
                                env={**os.environ, "LMGAUGE_PLUGINS": "openai,random"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            def current():
                r = s.get(f"/api/runs/{rid('runs/perf-live')}")
                cur = (r.json().get("current") or {}) if r.status == 200 else {}
                return cur if cur.get("requests") else None

            cur = s.wait_for(current, timeout=40)
            assert cur["total"] == 20 and 0 < cur["requests"] < 20 and cur["failed"] == 0
            assert 0.45 < cur["ttft_p50_s"] < 1.0
            html = s.get(f"/runs/{rid('runs/perf-live')}").text
            assert "Running now: " in html
            assert "of 20" in html and "TTFT p50" in html
            assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
            done = s.wait_for(lambda: next((r for r in s.json("/api/runs")["runs"]
                                            if r["id"] == "runs/perf-live" and r["status"] == "complete"), None))
            assert done["done"] == 1
            run = s.json(f"/api/runs/{rid('runs/perf-live')}")
            assert run["current"] is None and run["levels"][0]["requests"] == 20
            assert "Running now" not in s.get(f"/runs/{rid('runs/perf-live')}").text
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()


def test_a_killed_writer_shows_interrupted(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    code = ("import sys, time, yaml; from lmgauge.runfolder import FolderLock, new_manifest; from pathlib import Path; "
            "p = Path(sys.argv[1]); p.mkdir(); new_manifest('eval').write(p); "
            "(p / 'config.yaml').write_text(yaml.safe_dump({'model': 'm', 'benchmark': ['x'], 'repeats': 1})); "
            "FolderLock(p, 'eval').acquire(); print('held', flush=True); time.sleep(600)")
    writer = subprocess.Popen([sys.executable, "-c", code, str(runs / "r")], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held"
        with Serve(runs) as s:
            r = s.wait_for(lambda: next(iter(s.json("/api/runs")["runs"]), None))
            assert r["status"] == "running"
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            r = s.wait_for(lambda: next((x for x in s.json("/api/runs")["runs"] if x["status"] == "interrupted"), None))
            assert (runs / "r" / ".lmgauge.lock").exists()  # the dead writer's file stays; its flock is gone
            assert r["resume"].startswith("lmgauge eval --resume ")
            html = s.get(f"/runs/{rid('runs/r')}").text
            assert "lmgauge eval --resume" in html and "interrupted" in html
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()


def test_new_folders_appear_and_removed_ones_go(tmp_path):
    runs = tmp_path / "runs"
    (runs / "deep" / "er").mkdir(parents=True)
    with Serve(runs) as s:
        assert s.json("/api/runs")["runs"] == []
        ev = Events(s)
        shutil.copytree(V1 / "eval-b", runs / "deep" / "er" / "eval-b")
        e = ev.next(timeout=10)
        while e is not None and e.get("removed"):
            e = ev.next(timeout=10)
        assert e is not None and e["id"] == "runs/deep/er/eval-b" and e["run"]["status"] == "complete"
        assert [r["id"] for r in s.json("/api/runs")["runs"]] == ["runs/deep/er/eval-b"]
        shutil.rmtree(runs / "deep" / "er" / "eval-b")
        e = ev.next(timeout=10)
        assert e == {"id": "runs/deep/er/eval-b", "removed": True}
        assert s.json("/api/runs")["runs"] == []
        ev.close()


def test_sweeps_group_their_variants_and_regrades_name_their_source(tmp_path):
    from lmgauge.runfolder import new_manifest

    runs = tmp_path / "runs"
    sweep = runs / "sweep-temp"
    sweep.mkdir(parents=True)
    new_manifest("sweep", values=None).write(sweep)
    for t in ("0.6", "1.0"):
        v = sweep / f"temperature={t}"
        shutil.copytree(V1 / "eval-a", v)
        new_manifest("eval", sweep="..", values={"temperature": float(t)}).write(v)
    regrade = runs / "base" / "regrade-20260101"
    shutil.copytree(V1 / "eval-a", runs / "base")
    shutil.copytree(V1 / "regrade-a", regrade)
    new_manifest("regrade", source="..").write(regrade)
    with Serve(runs) as s:
        runs_ = {r["id"]: r for r in s.json("/api/runs")["runs"]}
        assert runs_["runs/sweep-temp"]["kind"] == "sweep"
        assert runs_["runs/sweep-temp"]["variants"] == ["runs/sweep-temp/temperature=0.6", "runs/sweep-temp/temperature=1.0"]
        assert runs_["runs/sweep-temp"]["status"] == "complete" and runs_["runs/sweep-temp"]["done"] == 2
        v = runs_["runs/sweep-temp/temperature=0.6"]
        assert v["sweep"] == "runs/sweep-temp" and v["values"] == {"temperature": 0.6}
        assert runs_["runs/base/regrade-20260101"]["source"] == "runs/base"
        assert runs_["runs/base/regrade-20260101"]["kind"] == "regrade"
        page = s.get(f"/runs/{rid('runs/sweep-temp')}").text
        assert "temperature=0.6" in page and "Compare the 2 variants" in page


# -- views through the plugin contract ----------------------------------------------------------
PLUGIN = '''
from lmgauge.plugin import hookimpl, Metric
from lmgauge_benchmarks.custom import CustomMath


class TestsBench(CustomMath):
    name = "tests_bench"
    description = "custom_math with a test table"

    def sample_view(self, record):
        return [{"kind": "table", "title": "tests", "columns": ["test", "outcome"],
                 "rows": [["t1 <script>window.__pwned='view'</script>", {"text": "pass", "status": "pass"}],
                          ["t2", {"text": "fail <img src=x onerror=alert(1)>", "status": "fail"}]]},
                {"kind": "fields", "title": "meta", "items": [["score", record.score]]},
                {"kind": "text", "title": "log", "text": "stdout <b>raw</b>"}]


class HalfMetric(Metric):
    name = "half_score"
    description = "half of AveragePass@1 (a test metric)"
    default = True

    def per_question(self, values, extracted, k):
        return sum(values) / len(values) / 2 if values else 0.0


@hookimpl
def register_benchmarks(register):
    register(TestsBench())


@hookimpl
def register_metrics(register):
    register(HalfMetric())
'''


def test_a_plugin_benchmark_and_metric_show_with_no_change_to_the_app(tmp_path, eval_server):
    plugin = tmp_path / "tests_plugin.py"
    plugin.write_text(PLUGIN)
    data = write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "question": "What is 1 + 1?", "answer": "2"}])
    server = eval_server({"model": "m", "answers": {math_prompt("What is 1 + 1?"): ["\\boxed{2}"]}})
    runs = tmp_path / "runs"
    run_cli("--plugin", str(plugin), "eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "tests_bench",
            "--dataset-path", f"tests_bench={data}", "--output", str(runs / "p"), "--no-progress", check=True)
    with Serve(runs, pre=("--plugin", str(plugin))) as s:
        data = s.json(f"/api/runs/{rid('runs/p')}")
        assert {r["metric"] for r in data["results"]} >= {"AveragePass@1", "half_score"}
        assert next(r for r in data["results"] if r["metric"] == "half_score" and r["subset"] == "OVERALL")["score"] == 0.5
        sample = s.json(f"/api/runs/{rid('runs/p')}/samples")["samples"][0]
        kinds = [b["kind"] for b in sample["views"]]
        assert kinds == ["table", "fields", "text"]
        assert sample["views"][0]["rows"][1][1] == {"text": "fail <img src=x onerror=alert(1)>", "status": "fail"}
        html = s.get(f"/runs/{rid('runs/p')}").text
        assert "half_score" in html


# -- security ----------------------------------------------------------------------------------
def test_path_traversal_gets_no_file(served):
    secret_file = served.root.parent / "secret.txt"
    secret_file.write_text("TOP-SECRET-CONTENT")
    for path in ("/api/runs/..%2F..%2Fsecret.txt", "/api/runs/runs%2F..%2F..%2Fsecret.txt", "/runs/%2e%2e%2F%2e%2e",
                 "/api/runs/%2e%2e/samples", "/static/..%2F..%2F..%2Fsetup.cfg", "/static/../../setup.cfg",
                 "/static/%2e%2e/server.py", "/runs/..%2F..%2F..%2Fetc%2Fpasswd", "/api/runs/%2Fetc%2Fpasswd",
                 "/../../etc/passwd", "/static/app.js/../../server.py", "/api/runs/runs%00/x"):
        r = served.get(path)
        assert 400 <= r.status < 500, (path, r.status)
        assert b"TOP-SECRET" not in r.body and b"root:" not in r.body and b"[metadata]" not in r.body
        assert b"aiohttp" not in r.body


def test_symlinks_out_of_the_served_folder_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(V1 / "eval-a", outside / "eval-a")
    runs = tmp_path / "runs"
    runs.mkdir()
    os.symlink(outside / "eval-a", runs / "linked-run")
    shutil.copytree(V1 / "eval-b", runs / "tricky")
    (runs / "tricky" / "samples.jsonl").unlink()
    os.symlink(outside / "eval-a" / "samples.jsonl", runs / "tricky" / "samples.jsonl")
    with Serve(runs) as s:
        assert s.json("/api/runs")["runs"] == []
        assert s.get(f"/runs/{rid('runs/linked-run')}").status == 404


def test_a_foreign_host_header_is_refused(served):
    ok = [f"127.0.0.1:{served.port}", f"localhost:{served.port}", "localhost", f"[::1]:{served.port}"]
    for host in ok:
        assert served.request("/api/runs", host=host).status == 200, host
    for host in ("evil.example", f"evil.example:{served.port}", "localhost.evil.example", "127.0.0.1.nip.io", ""):
        r = served.request("/api/runs", host=host)
        assert r.status == 403, host
        assert b"runs/" not in r.body
    assert served.request("/", host="attacker.test").status == 403
    assert served.request("/api/events", host="attacker.test").status == 403


def test_a_non_loopback_bind_needs_a_token(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(V1 / "eval-a", runs / "eval-a")
    with Serve(runs, args=("--host", "0.0.0.0")) as s:
        assert s.token and len(s.token) >= 24
        assert s.line == f"lmgauge serve: http://0.0.0.0:{s.port}/?token={s.token}\n"
        for path in ("/", "/api/runs", f"/runs/{rid('runs/eval-a')}", "/api/events", "/static/app.js",
                     f"/api/runs/{rid('runs/eval-a')}/samples"):
            r = s.request(path)
            assert r.status == 401, path
            assert b"eval-a" not in r.body
        assert s.request("/api/runs?token=wrong").status == 401
        assert s.request("/api/runs", headers={"Cookie": "lmgauge_token_%d=wrong" % s.port}).status == 401
        # the token as ?token=T: a page URL is sent on without it, with an HttpOnly SameSite=Strict cookie
        r = s.request(f"/?token={s.token}")
        assert r.status == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"lmgauge_token_{s.port}={s.token}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        r = s.request(f"/runs/{rid('runs/eval-a')}?status=wrong&token={s.token}")
        assert r.status == 303 and r.headers["location"] == f"/runs/{rid('runs/eval-a')}?status=wrong"
        jar = {"Cookie": f"lmgauge_token_{s.port}={s.token}"}
        assert s.request("/", headers=jar).status == 200
        assert s.request(f"/api/runs?token={s.token}").status == 200
        assert s.request("/api/runs", headers={"Authorization": f"Bearer {s.token}"}).status == 200
        # another machine name is refused, an IP literal is not a rebinding
        assert s.request("/api/runs", headers=jar, host="evil.example").status == 403
        assert s.request("/api/runs", headers=jar, host=f"10.1.2.3:{s.port}").status == 200
    with Serve(runs, args=("--host", "0.0.0.0", "--token", "my-own-token")) as s:
        assert s.token == "my-own-token"


def test_a_token_on_loopback_is_optional_but_enforced_when_given(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with Serve(runs, args=("--token", "abc123")) as s:
        assert s.line.endswith("/?token=abc123\n")
        assert s.request("/api/runs").status == 401
        assert s.request("/api/runs?token=abc123").status == 200


def test_bad_input_is_one_line(tmp_path):
    from conftest import assert_one_line_error

    proc = run_cli("serve", str(tmp_path / "nope"), "--port", "0", timeout=60)
    assert_one_line_error(proc, "no folder", "lmgauge serve runs")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(run_cli("serve", str(tmp_path / "file"), "--port", "0", timeout=60), "is not a folder")
    with Serve(tmp_path) as s:
        proc = run_cli("serve", str(tmp_path), "--port", str(s.port), timeout=60)
        assert_one_line_error(proc, f"cannot listen on 127.0.0.1:{s.port}", "--port")


def crawl(s: Serve, ids: list[str]) -> list[tuple[str, bytes]]:
    """Every route of every run: pages, sections, API, samples (full texts), search, compare."""
    out = []
    paths = ["/", "/api/runs", "/static/app.js", "/static/app.css"]
    for i in ids:
        p = rid(i)
        paths += [f"/runs/{p}", f"/runs/{p}/part", f"/api/runs/{p}"]
        if "perf" not in i:
            paths += [f"/api/runs/{p}/samples?limit=500", f"/api/runs/{p}/samples?q=sk-&limit=500"]
    evals = [i for i in ids if "perf" not in i]
    paths += ["/compare?" + "&".join(f"run={i}" for i in ids), "/compare/part?" + "&".join(f"run={i}" for i in ids),
              "/api/compare/samples?" + "&".join(f"run={i}" for i in evals)]
    for path in paths:
        r = s.get(path)
        assert r.status == 200, (path, r.status, r.text[:300])
        out.append((path, r.body + b"".join(f"{k}: {v}".encode() for k, v in r.all_headers)))
    return out


def test_no_secret_in_any_response(served, tmp_path):
    from fixtures.runfolders import BEARER, SECRET

    ids = ["runs/eval-a", "runs/eval-b", "runs/perf-a", "runs/v1/eval-a", "runs/careless"]
    served.wait_for(lambda: {r["id"] for r in served.json("/api/runs")["runs"]} >= set(ids))
    ev = Events(served)
    ev.next(timeout=1.0)
    for path, body in crawl(served, ids):
        for secret in (KEY, SECRET, BEARER.split()[1], "swk-SECRET-777", "hf_SECRET_888"):
            assert secret.encode() not in body, (secret, path)
    ev.close()


def test_every_response_carries_the_policy_headers(served):
    for path in ("/", f"/runs/{rid('runs/v1/eval-a')}", "/api/runs", "/static/app.js", "/nope"):
        r = served.get(path)
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp, path
        assert r.headers.get("x-content-type-options") == "nosniff"
        assert r.headers.get("referrer-policy") == "no-referrer"
    html = served.get(f"/runs/{rid('runs/eval-a')}").text
    assert "window.__pwned" in html  # the evil answer is on the page, as text only:
    assert "<script>" not in html and "<img" not in html and "<svg onload" not in html and " style=" not in html
