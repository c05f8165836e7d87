"""Run folders written by the previous release (schema 1: tests/data/runs_v1/, made by main at
e99d346 with tests/data/make_runs_v1.py) read identically with today's code: `lmgauge report`
prints the same tables, `lmgauge compare` the same comparison, `lmgauge export --to json` the
same records (new fields may be added, none changes), and `lmgauge regrade` the same report."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_cli

V1 = REPO / "tests" / "data" / "runs_v1"
EXPECTED = V1 / "expected"
RUNS = ("eval-a", "eval-b", "regrade-a", "eval-custom", "perf-sweep", "perf-sla", "perf-multiturn")
ENV = {"LMGAUGE_PLUGINS": "math_500,custom_math,custom_mcq,openai,random,multi_turn,json,sqlite,export_command"}


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """The fixtures copied (report writes report.html into a folder; the committed ones stay)."""
    dest = tmp_path_factory.mktemp("v1")
    for name in RUNS:
        shutil.copytree(V1 / name, dest / name)
    return dest


def _without_path_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("html report:")]


@pytest.mark.parametrize("name", RUNS)
def test_report_tables_are_unchanged(copy, tmp_path, name):
    proc = run_cli("report", str(copy / name), "-o", str(tmp_path / "r.html"), env=ENV, check=True)
    assert _without_path_lines(proc.stdout) == _without_path_lines((EXPECTED / f"report-{name}.txt").read_text())
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_compare_is_unchanged(copy, tmp_path):
    out = tmp_path / "ab.json"
    proc = run_cli("compare", "eval-a", "eval-b", "--json", str(out), env=ENV, check=True, cwd=copy)
    expected_text = (EXPECTED / "compare-a-b.txt").read_text().splitlines()
    assert [line for line in proc.stdout.splitlines() if not line.startswith("json:")] == \
        [line for line in expected_text if not line.startswith("json:")]
    got, want = json.loads(out.read_text()), json.loads((EXPECTED / "compare-a-b.json").read_text())
    for doc in (got, want):
        for side in ("a", "b"):
            doc[side]["path"] = Path(doc[side]["path"]).name
    assert got == want


def _same_or_extended(got, want, where: str) -> None:
    """``got`` holds everything ``want`` holds, equal; new keys may be added."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        for k, v in want.items():
            assert k in got, f"{where}.{k} missing"
            _same_or_extended(got[k], v, f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _same_or_extended(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), where
    else:
        assert got == want, where


@pytest.mark.parametrize("name", RUNS)
def test_export_json_keeps_every_record(copy, tmp_path, name):
    target = tmp_path / "x.json"
    run_cli("export", str(copy / name), "--to", "json", "--export-path", str(target), env=ENV, check=True)
    got, want = json.loads(target.read_text()), json.loads((EXPECTED / f"export-{name}.json").read_text())
    for doc in (got, want):
        doc.pop("exported_at"), doc.pop("lmgauge_version")
        doc["run"].pop("dir")
    # schema 1 wrote an eval run's list of --base-url as the text of a Python list (a bug)
    assert got["run"].pop("url") in want["run"].pop("url")
    _same_or_extended(got, want, name)


def test_regrade_of_an_old_folder_gives_the_same_report(copy, tmp_path):
    out = tmp_path / "rg"
    run_cli("regrade", str(copy / "eval-a"), "--output", str(out), env=ENV, check=True)
    got = json.loads((out / "report.json").read_text())
    want = json.loads((EXPECTED / "regrade-eval-a-report.json").read_text())
    for row in want["results"]:  # one deliberate change: CIs of means of [0, 1] scores stay in [0, 1]
        for k in ("ci_low", "ci_high"):
            if row[k] is not None:
                row[k] = min(1.0, max(0.0, row[k]))
    assert got["results"] == want["results"]
    _same_or_extended(got["benchmarks"], want["benchmarks"], "benchmarks")
    assert "judge" not in got and "judge" not in want  # no --judge-model: the rule graders alone
    assert got["regrade"]["benchmarks"] == want["regrade"]["benchmarks"]


def test_the_library_reads_schema_1(copy):
    from lmgauge.runfolder import load_run

    a = load_run(copy / "eval-a")
    assert a.schema_version == 1 and a.kind == "eval" and a.model == "model-a"
    recs = list(a.samples())
    assert len(recs) == 18 and sum(r.failed for r in recs) == 3
    assert {r.score_status for r in recs if not r.failed} <= {"decided", "undecided"}
    judged = [r for r in recs if r.judged]
    assert judged and all(r.rule_score is not None for r in judged)
    assert load_run(copy / "regrade-a").regrade
    sweep = load_run(copy / "perf-sweep")
    assert [lv.concurrency for lv in sweep.levels] == [1, 2] and all(lv.text for lv in sweep.levels)
    rows = list(sweep.requests())
    assert len(rows) == 12 and all(r.value("ttft_s") is not None for r in rows)
    multi = load_run(copy / "perf-multiturn")
    assert [t.turn for t in multi.levels[0].turns] == [1, 2, 3]
