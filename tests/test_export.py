"""Exporters json and sqlite, run_exporters' failure lines, third-party exporters, the
``lmgauge export`` command. Run folders come from tests/fixtures/runfolders.py (the contract)."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from fixtures.runfolders import folder_state, make_eval_run, make_perf_run

from lmgauge import plugins as lm_plugins
from lmgauge.export import export_settings, export_target, parse_names, run_exporters


@pytest.fixture(autouse=True)
def fresh_manager(monkeypatch):
    monkeypatch.delenv("LMGAUGE_PLUGINS", raising=False)
    lm_plugins.reset_manager()
    yield
    lm_plugins.reset_manager()


@pytest.fixture
def runs(tmp_path):
    e = make_eval_run(tmp_path / "eval-a", seed=1)
    p = make_perf_run(tmp_path / "perf-a", seed=2)
    return e, p


def no_secrets(data: bytes) -> None:
    assert b"SECRET" not in data
    assert b"user:pw@" not in data


def ok_lines(lines: list[str]) -> None:
    assert lines and all(not l.startswith("lmgauge: warning") for l in lines), lines


# -- json ------------------------------------------------------------------------------
def test_json_export_eval_round_trip(runs):
    e, _ = runs
    before = folder_state(e["dir"])
    lines = run_exporters(["json"], str(e["dir"]), {})
    ok_lines(lines)
    out = e["dir"] / "export.json"
    assert str(out) in lines[0] and "24 samples" in lines[0]
    raw = out.read_bytes()
    no_secrets(raw)
    doc = json.loads(raw)
    assert doc["schema"] == "lmgauge-export" and doc["schema_version"] == 1
    assert doc["run"]["kind"] == "eval" and doc["run"]["model"] == "DeepSeek-R1-Distill-Qwen-1.5B"
    assert doc["config"]["api_key"] == "***" and doc["config"]["max_tokens"] == 32768
    assert doc["report"]["results"] == e["report"]["results"]
    # latest record per key, in order; the superseded line is gone
    assert doc["samples"] == e["records"]
    assert "SUPERSEDED EARLIER LINE" not in raw.decode()
    assert doc["requests"] == []
    # the run's own files are untouched
    after = folder_state(e["dir"])
    after.pop("export.json")
    assert after == before


def test_json_export_perf_requests(runs):
    _, p = runs
    target = p["dir"].parent / "exports" / "perf.json"
    lines = run_exporters("json", str(p["dir"]), {"export_path": str(target)})
    ok_lines(lines)
    doc = json.loads(target.read_bytes())
    no_secrets(target.read_bytes())
    assert doc["run"]["kind"] == "perf" and doc["samples"] == []
    assert len(doc["requests"]) == len(p["requests"]) == 36
    for got, want in zip(doc["requests"], p["requests"]):
        assert got["level"] == want["run_id"] - 1
        assert got["itl_s"] == json.loads(want["itl_json"])
        assert got["success"] is bool(want["success"])
        assert got["latency_s"] == want["latency_s"]
    assert doc["report"]["runs"] == p["summary"]["runs"]


def test_export_target_rules(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    kw = dict(suffixes=(".json",), default_file="export.json", file_in_folder="run.json")
    assert export_target(run, {}, **kw) == run / "export.json"
    assert export_target(run, {"export_path": str(tmp_path / "x.json")}, **kw) == tmp_path / "x.json"
    assert export_target(run, {"export_path": str(tmp_path / "all.sqlite")}, **kw) == tmp_path / "run.json"
    assert export_target(run, {"export_path": str(tmp_path)}, **kw) == tmp_path / "run.json"
    assert export_target(run, {"export_path": str(tmp_path / "newdir")}, **kw) == tmp_path / "newdir" / "run.json"
    with pytest.raises(Exception, match="run's own files"):
        export_target(run, {"export_path": str(run / "report.json")}, **kw)
    assert parse_names(["json, sqlite", "json", " swanlab "]) == ["json", "sqlite", "swanlab"]
    assert export_settings({"export": "json", "swanlab_mode": "offline", "export_path": None}) == \
        (["json"], {"swanlab_mode": "offline", "export_path": None})


# -- sqlite ----------------------------------------------------------------------------
def _rows(db: Path, sql: str, *args) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def test_sqlite_records_read_back_equal(runs):
    e, p = runs
    db = e["dir"].parent / "shared.sqlite"
    ok_lines(run_exporters(["sqlite"], str(e["dir"]), {"export_path": str(db)}))
    ok_lines(run_exporters(["sqlite"], str(p["dir"]), {"export_path": str(db)}))
    no_secrets(db.read_bytes())
    runs_rows = _rows(db, "SELECT * FROM runs ORDER BY run_id")
    assert [(r["kind"], r["model"]) for r in runs_rows] == [("eval", "DeepSeek-R1-Distill-Qwen-1.5B"), ("perf", "gpt-oss-20b")]
    eval_id, perf_id = runs_rows[0]["run_id"], runs_rows[1]["run_id"]

    got = _rows(db, "SELECT * FROM eval_samples WHERE run_id=? ORDER BY rowid", eval_id)
    assert len(got) == len(e["records"])
    for row, rec in zip(got, e["records"]):
        assert row["benchmark"] == rec["benchmark"] and row["sample_id"] == rec["sample_id"]
        assert row["repeat"] == rec["repeat"] and json.loads(row["subsets_json"]) == rec["subsets"]
        for k in ("question", "gold", "response", "reasoning", "finish_reason", "extracted", "score", "error",
                  "prompt_tokens", "completion_tokens", "latency_s", "attempts"):
            assert row[k] == rec[k], k
        assert json.loads(row["prompt_json"]) == rec["prompt"]
        assert row["truncated"] == int(rec["truncated"])
        assert row["correct"] == (None if rec["correct"] is None else int(rec["correct"]))

    scores = _rows(db, "SELECT benchmark, subset, metric, score, count, ci_low, ci_high FROM scores WHERE run_id=?", eval_id)
    assert scores == e["report"]["results"]
    health = _rows(db, "SELECT * FROM eval_benchmarks WHERE run_id=?", eval_id)
    assert [(h["benchmark"], h["errors"], h["truncated"]) for h in health] == \
        [(b["benchmark"], b["errors"], b["truncated"]) for b in e["report"]["benchmarks"]]

    reqs = _rows(db, "SELECT * FROM perf_requests WHERE run_id=? ORDER BY level, idx", perf_id)
    assert len(reqs) == len(p["requests"])
    for row, want in zip(reqs, p["requests"]):
        assert row["level"] == want["run_id"] - 1
        for k in ("idx", "scheduled_s", "sent_s", "ttft_s", "ttfc_s", "latency_s", "prompt_tokens",
                  "completion_tokens", "usage_source", "success"):
            assert row[k] == want[k], k
        assert json.loads(row["itl_json"]) == json.loads(want["itl_json"])
    levels = _rows(db, "SELECT * FROM perf_levels WHERE run_id=? ORDER BY level", perf_id)
    assert [lv["concurrency"] for lv in levels] == [1, 4, 16]
    for lv, want in zip(levels, p["summary"]["runs"]):
        assert lv["request_throughput"] == want["request_throughput"]
        assert lv["ttft_p99"] == want["ttft_s"]["p99"] and lv["latency_mean"] == want["latency_s"]["mean"]


def test_sqlite_compare_two_models_query_from_docs(tmp_path):
    """The query in docs/outputs.md, on two models appended to one file."""
    a = make_eval_run(tmp_path / "eval-A", model="model-A", seed=3, accuracy=0.9)
    b = make_eval_run(tmp_path / "eval-B", model="model-B", seed=4, accuracy=0.2)
    db = tmp_path / "results.sqlite"
    for run in (a, b):
        ok_lines(run_exporters(["sqlite"], str(run["dir"]), {"export_path": str(db)}))
    docs = (REPO / "docs" / "outputs.md").read_text()
    start = docs.index("-- compare two models")
    query = docs[start: docs.index("```", start)]
    rows = _rows(db, query)
    by = {(r["benchmark"], r["model"]): r["score"] for r in rows}
    for run in (a, b):
        for res in run["report"]["results"]:
            if res["subset"] == "OVERALL":
                assert by[(res["benchmark"], run["report"]["model"])] == res["score"]
    # re-exporting the same run replaces it instead of duplicating
    line = run_exporters(["sqlite"], str(a["dir"]), {"export_path": str(db)})[0]
    assert "replaced" in line
    assert _rows(db, "SELECT count(*) AS n FROM runs")[0]["n"] == 2
    assert _rows(db, "SELECT count(*) AS n FROM eval_samples")[0]["n"] == len(a["records"]) + len(b["records"])


CONCURRENT = """
import sys
from lmgauge.export import run_exporters
db, dirs = sys.argv[1], sys.argv[2:]
for d in dirs:
    for line in run_exporters(["sqlite"], d, {"export_path": db}):
        print(line, flush=True)
"""


def test_sqlite_concurrent_appends_from_two_processes_lose_nothing(tmp_path):
    dirs_a = [make_eval_run(tmp_path / f"a{i}", model=f"A{i}", seed=i, benchmarks={"math_500": 60}, repeats=4,
                            response_chars=3000)["dir"] for i in range(3)]
    dirs_b = [make_perf_run(tmp_path / f"b{i}", model=f"B{i}", seed=10 + i, requests=150)["dir"] for i in range(3)]
    db = tmp_path / "shared.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(db), *map(str, dirs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for dirs in (dirs_a, dirs_b)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "warning" not in out and out.count("added run") == 3, out + err
    runs_rows = _rows(db, "SELECT run_id, model, kind FROM runs")
    assert sorted(r["model"] for r in runs_rows) == ["A0", "A1", "A2", "B0", "B1", "B2"]
    assert _rows(db, "SELECT count(*) AS n FROM eval_samples")[0]["n"] == 3 * 60 * 4
    assert _rows(db, "SELECT count(*) AS n FROM perf_requests")[0]["n"] == 3 * 3 * 150
    per_run = _rows(db, "SELECT r.model, count(s.rowid) AS n FROM runs r LEFT JOIN eval_samples s USING(run_id) "
                        "WHERE r.kind='eval' GROUP BY r.model")
    assert all(r["n"] == 240 for r in per_run)


def test_sqlite_refuses_a_foreign_database(runs):
    e, p = runs
    before = folder_state(p["dir"])
    # someone points --export-path at a perf run's own perf.sqlite (other schema)
    lines = run_exporters(["sqlite"], str(e["dir"]), {"export_path": str(p["dir"] / "perf.sqlite")})
    assert len(lines) == 1 and lines[0].startswith("lmgauge: warning: export sqlite failed:")
    assert "not an lmgauge export database" in lines[0]
    assert folder_state(p["dir"]) == before
    junk = e["dir"].parent / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    line = run_exporters(["sqlite"], str(e["dir"]), {"export_path": str(junk)})[0]
    assert "export sqlite failed" in line and "junk.db" in line


# -- failures: one clear line, nothing of the run lost --------------------------------
@pytest.mark.parametrize("name", ["json", "sqlite"])
def test_unwritable_path_is_one_line_and_run_files_stay(runs, tmp_path, name):
    e, _ = runs
    before = folder_state(e["dir"])
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for bad in ("/proc/lmgauge-no-such-dir/out" + (".json" if name == "json" else ".sqlite"),
                str(blocker / ("out.json" if name == "json" else "out.sqlite"))):
        lines = run_exporters([name], str(e["dir"]), {"export_path": bad})
        assert len(lines) == 1, lines
        line = lines[0]
        assert line.startswith(f"lmgauge: warning: export {name} failed: "), line
        assert "Traceback" not in line and "\n" not in line
        assert "unchanged" in line
    assert folder_state(e["dir"]) == before
    assert not list(tmp_path.glob("**/*.tmp"))


def test_unknown_exporter_and_bad_folder(runs, tmp_path):
    e, _ = runs
    lines = run_exporters(["json", "nope"], str(e["dir"]), {})
    assert lines[0].startswith("export json: wrote")
    assert lines[1].startswith("lmgauge: warning: export nope failed: unknown exporter 'nope'")
    assert "installed:" in lines[1] and "json" in lines[1] and "sqlite" in lines[1]
    lines = run_exporters(["json"], str(tmp_path / "missing"), {})
    assert len(lines) == 1 and "does not exist" in lines[0]
    assert run_exporters([], str(e["dir"]), {}) == []


def test_exporter_bug_or_tampering_is_reported(runs, monkeypatch, tmp_path):
    """A third-party exporter registered through register_exporters (the docs example), one
    that crashes, and one that writes into the run's files."""
    e, _ = runs
    docs = (REPO / "docs" / "outputs.md").read_text()
    start = docs.index("# my_lmgauge_exporter.py")
    code = docs[start: docs.index("```", start)]
    mod = types.ModuleType("my_lmgauge_exporter")
    exec(compile(code, "my_lmgauge_exporter.py", "exec"), mod.__dict__)

    bad = types.ModuleType("bad_exporters")
    exec(textwrap.dedent('''
        from pathlib import Path
        from lmgauge import hookimpl
        from lmgauge.interfaces import Exporter

        class Crash(Exporter):
            name = "crash"
            def export(self, run_dir, options):
                raise ZeroDivisionError("boom with Bearer abc.SECRET.def")

        class Tamper(Exporter):
            name = "tamper"
            def export(self, run_dir, options):
                with open(Path(run_dir) / "report.json", "a") as fh:
                    fh.write(" ")
                return "tampered"

        @hookimpl
        def register_exporters(register):
            register(Crash)
            register(Tamper())
    '''), bad.__dict__)

    def ep(name, module):
        return types.SimpleNamespace(name=name, value=module.__name__, dist=None, load=lambda: module)

    monkeypatch.setattr(lm_plugins, "_MANAGER", lm_plugins.PluginManager(entry_points=[ep("csv", mod), ep("bad", bad)]))
    lines = run_exporters(["csv", "crash", "tamper"], str(e["dir"]), {"export_path": str(tmp_path / "scores.csv")})
    assert lines[0].startswith("export csv: wrote"), lines
    csv_text = (tmp_path / "scores.csv").read_text()
    assert "math_500,OVERALL,AveragePass@1" in csv_text
    assert lines[1].startswith("lmgauge: warning: export crash failed: internal error in the exporter: ZeroDivisionError")
    assert "SECRET" not in lines[1]
    assert lines[2] == "export tamper: tampered"
    assert lines[3].startswith("lmgauge: warning: exporter tamper modified the run's own files: report.json")


def test_export_command(runs, tmp_path):
    e, p = runs
    db = tmp_path / "cmp.sqlite"
    proc = run_cli("export", str(e["dir"]), str(p["dir"]), "--to", "sqlite,json", "--export-path", str(db), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("export sqlite: added run") == 2 and proc.stdout.count("export json: wrote") == 2
    assert (tmp_path / "eval-a.json").exists() and (tmp_path / "perf-a.json").exists()
    proc = run_cli("export", str(e["dir"]), "--to", "nope", timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("lmgauge: warning: export nope failed: unknown exporter")
