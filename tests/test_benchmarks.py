"""Benchmark loading (lmgauge-benchmarks): bundled MATH-500, AIME from the shared files, GPQA from
CSVs written here (GPQA-format questions made up for the tests, never real GPQA text), the hub
paths offline, and one-line errors for bad input."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from lmgauge.errors import DataError
from lmgauge.interfaces import Benchmark
from lmgauge.plugins import PluginManager
from lmgauge.types import Completion
from lmgauge_benchmarks.aime import Aime24, Aime25
from lmgauge_benchmarks.gpqa import GPQADiamond, shuffle_choices
from lmgauge_benchmarks.math_500 import Math500, bundled_path

SHARED = Path(__file__).resolve().parents[2] / "shared"
INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
GPQA_COLUMNS = ["Record ID", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                "Incorrect Answer 3", "High-level domain"]


def shared_file(name: str) -> Path:
    path = SHARED / "data" / name
    if not path.exists():
        pytest.skip(f"shared data missing: {path} (the repo's parent folder has no shared/data)")
    return path


def write_gpqa(path: Path, rows: list[list[str]], columns: list[str] = GPQA_COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)
    return path


def made_up_gpqa(n: int) -> list[list[str]]:
    domains = ["Physics", "Chemistry", "Biology"]
    return [[f"rec{i:03d}", f"Made-up question {i}: which invented constant is largest?", f"right {i}",
             f"wrong one {i}", f"wrong two {i}", f"wrong three {i}", domains[i % 3]] for i in range(n)]


# --------------------------------------------------------------------------- MATH-500


def test_math500_bundled_rows_ids_and_subsets():
    samples = Math500().load()
    rows = [json.loads(x) for x in Path(bundled_path()).read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 500
    assert [s.id for s in samples] == [r["unique_id"] for r in rows] and len({s.id for s in samples}) == 500
    assert Counter(s.subsets[0] for s in samples) == {"Level 1": 43, "Level 2": 90, "Level 3": 105,
                                                      "Level 4": 128, "Level 5": 134}
    assert Counter(s.subsets[1] for s in samples) == {
        "Algebra": 124, "Intermediate Algebra": 97, "Prealgebra": 82, "Number Theory": 62,
        "Precalculus": 56, "Geometry": 41, "Counting & Probability": 38}
    for s, r in zip(samples, rows):
        assert s.question == r["problem"] and s.gold == r["answer"] and isinstance(s.gold, str)
        assert s.prompt == r["problem"] + INSTRUCTION
        assert s.benchmark == "math_500" and len(s.subsets) == 2


def test_math500_bundled_file_is_the_mit_source_with_its_notice():
    data = Path(bundled_path())
    assert hashlib.sha256(data.read_bytes()).hexdigest() == \
        "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132"
    notice = (data.parent / "NOTICE.txt").read_text()
    for needle in ("openai/prm800k", "hkust-nlp/simpleRL-reason", "hendrycks", "MIT License"):
        assert needle in notice


def test_math500_grades_its_own_golds_and_rejects_a_neighbours():
    bench = Math500()
    samples = bench.load()
    for s in samples[:60]:
        right = bench.score(s, Completion(f"<think>maybe \\boxed{{-31337}}</think>\nSo \\boxed{{{s.gold}}}."))
        assert right.correct and right.extracted == s.gold, s.gold
    wrong = bench.score(samples[0], Completion("<think>\\boxed{%s}</think> \\boxed{-31337}" % samples[0].gold))
    assert not wrong.correct and wrong.extracted == "-31337"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_math500_from_a_local_file_in_each_format(tmp_path, fmt):
    rows = [{"problem": "What is $1+1$?", "answer": "2", "level": 1, "subject": "Prealgebra", "unique_id": "a/1"},
            {"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}", "level": "Level 3",
             "subject": "Algebra", "unique_id": "a/2"}]
    path = tmp_path / f"m.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    elif fmt == "json":
        path.write_text(json.dumps({"data": rows}))
    else:
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    samples = Math500().load(str(path))
    assert [(s.id, s.gold, s.subsets) for s in samples] == [
        ("a/1", "2", ("Level 1", "Prealgebra")), ("a/2", "\\frac{1}{2}", ("Level 3", "Algebra"))]
    assert samples[1].prompt == "Simplify $\\frac{2}{4}$." + INSTRUCTION


def test_parquet_is_read_or_refused_in_one_line(tmp_path):
    path = tmp_path / "m.parquet"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is None:
        path.write_bytes(b"PAR1 not really")
        try:
            import pandas  # noqa: F401
        except ImportError:
            with pytest.raises(DataError) as err:
                Math500().load(str(path))
            assert "Parquet needs pyarrow or pandas" in err.value.line()
            assert "--dataset-path math_500=" in err.value.line() and "\n" not in err.value.line()
            return
        pytest.skip("pandas without pyarrow: the parquet engine decides")
    pq.write_table(pa.Table.from_pylist([{"problem": "1+2?", "answer": "3"}]), path)
    assert [s.gold for s in Math500().load(str(path))] == ["3"]


# --------------------------------------------------------------------------- AIME


def test_aime24_from_the_shared_file_contests_from_url_and_ids():
    path = shared_file("aime24.jsonl")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    samples = Aime24().load(str(path))
    assert len(samples) == 30 and [s.id for s in samples] == [str(r["id"]) for r in rows]
    for s, r in zip(samples, rows):
        contest = "II" if "_AIME_II_" in r["url"] else "I"
        assert s.subsets == (f"AIME2024-{contest}",)
        assert s.subsets == (("AIME2024-I",) if 60 <= r["id"] <= 74 else ("AIME2024-II",)), r["id"]
        assert s.gold == r["answer"] and s.prompt == r["problem"] + INSTRUCTION
        assert s.meta["problem_number"] == int(r["url"].rsplit("_", 1)[1])
    assert Counter(s.subsets[0] for s in samples) == {"AIME2024-I": 15, "AIME2024-II": 15}
    padded = [s for s in samples if s.gold.startswith("0")]
    assert {s.gold for s in padded} >= {"025", "073", "023", "045", "033", "080", "055"}
    bench = Aime24()
    for s in padded:
        assert bench.score(s, Completion(f"</think>\\boxed{{{int(s.gold)}}}")).correct
        assert not bench.score(s, Completion(f"\\boxed{{{int(s.gold) + 1}}}")).correct


def test_aime24_contest_from_ids_when_there_is_no_url(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"id": i, "problem": f"p{i}", "answer": "1"} for i in (89, 60, 74, 75)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert [s.subsets[0] for s in Aime24().load(str(path))] == ["AIME2024-II", "AIME2024-I", "AIME2024-I", "AIME2024-II"]


def test_aime25_from_the_shared_file_strips_the_instruction():
    path = shared_file("aime25.jsonl")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    samples = Aime25().load(str(path))
    assert [s.gold for s in samples] == [str(a) for a in (
        70, 588, 16, 117, 279, 504, 821, 77, 62, 81, 259, 510, 204, 60, 735, 468, 49, 82, 106, 336, 293,
        237, 610, 149, 907, 113, 19, 248, 104, 240)]
    assert [s.subsets[0] for s in samples] == ["AIME2025-I"] * 15 + ["AIME2025-II"] * 15
    assert [s.id for s in samples[:2]] == ["2025-I-1", "2025-I-2"] and samples[15].id == "2025-II-1"
    for s, r in zip(samples, rows):
        assert r["prompt"].endswith(INSTRUCTION)
        assert s.question == r["prompt"][: -len(INSTRUCTION)]
        assert s.prompt == s.question + INSTRUCTION and s.prompt.count("Please reason step by step") == 1
    assert Aime25().score(samples[0], Completion("\\boxed{070}")).correct


def test_aime_csv_without_ids_splits_in_halves(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("question,answer\n" + "".join(f"Problem {i},{i:03d}\n" for i in range(30)))
    samples = Aime25().load(str(path))
    assert Counter(s.subsets[0] for s in samples) == {"AIME2025-I": 15, "AIME2025-II": 15}
    assert samples[3].gold == "003" and Aime25().score(samples[3], Completion("\\boxed{3}")).correct


# --------------------------------------------------------------------------- GPQA


def test_gpqa_shuffle_is_pinned_by_the_question_text():
    q = "Which made-up particle decays fastest?"
    seed = int.from_bytes(hashlib.sha256(q.encode()).digest()[:8], "big")
    assert seed == 7698089465748302008
    # a fixed permutation: the same on every run, machine and Python version
    assert shuffle_choices(q, ["right", "w1", "w2", "w3"]) == (["w2", "w1", "w3", "right"], 3)
    assert shuffle_choices("Made-up question 0?", ["right", "w1", "w2", "w3"]) == (["right", "w2", "w1", "w3"], 0)
    # and it does not depend on the process either
    code = ("from lmgauge_benchmarks.gpqa import shuffle_choices as s; "
            f"print(s({q!r}, ['right', 'w1', 'w2', 'w3']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, check=True).stdout
    assert out.strip() == "(['w2', 'w1', 'w3', 'right'], 3)"


def test_gpqa_from_csv(tmp_path):
    path = write_gpqa(tmp_path / "g.csv", made_up_gpqa(60))
    a, b = GPQADiamond().load(str(path)), GPQADiamond().load(str(path))
    assert [(s.prompt, s.gold) for s in a] == [(s.prompt, s.gold) for s in b]
    assert [s.id for s in a] == [f"rec{i:03d}" for i in range(60)]
    assert Counter(s.gold for s in a).keys() == set("ABCD"), "the right answer lands on every letter"
    assert Counter(s.subsets for s in a) == {("Physics",): 20, ("Chemistry",): 20, ("Biology",): 20}
    for i, s in enumerate(a):
        lines = s.prompt.splitlines()
        shown = [l for l in lines if l[:3] in ("A) ", "B) ", "C) ", "D) ")]
        assert len(shown) == 4 and [l[0] for l in shown] == list("ABCD")
        assert f"{s.gold}) right {i}" in shown
        assert "ANSWER: $LETTER" in s.prompt and f"Made-up question {i}:" in s.prompt
    s = a[0]
    other = "B" if s.gold == "A" else "A"
    bench = GPQADiamond()
    assert bench.score(s, Completion(f"<think>ANSWER: {other}</think>\nANSWER: {s.gold}")).correct
    assert not bench.score(s, Completion(f"<think>ANSWER: {s.gold}</think>\nANSWER: {other}")).correct
    assert bench.score(s, Completion(f"<think>ANSWER: {s.gold}")).extracted is None


def test_gpqa_without_record_ids_gets_stable_ids(tmp_path):
    rows = [r[1:] for r in made_up_gpqa(5)]
    path = write_gpqa(tmp_path / "g.csv", rows, GPQA_COLUMNS[1:])
    ids = [s.id for s in GPQADiamond().load(str(path))]
    assert len(set(ids)) == 5 and ids == [s.id for s in GPQADiamond().load(str(path))]
    reordered = write_gpqa(tmp_path / "r.csv", rows[::-1], GPQA_COLUMNS[1:])
    assert [s.id for s in GPQADiamond().load(str(reordered))] == ids[::-1]


# --------------------------------------------------------------------------- hub, errors


def test_hub_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for bench, hint in ((GPQADiamond(), "--dataset-path gpqa_diamond=FILE.csv"), (Aime24(), "--dataset-path aime24=PATH"),
                        (Aime25(), "--dataset-path aime25=PATH")):
        with pytest.raises(DataError) as err:
            bench.load()
        line = err.value.line()
        assert hint in line and "offline" in line.lower() and "\n" not in line


def test_hub_unreachable_is_one_quick_line(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    t = time.monotonic()
    with pytest.raises(DataError) as err:
        GPQADiamond().load()
    assert time.monotonic() - t < 10, "no retries against an unreachable hub"
    line = err.value.line()
    assert "cannot reach the Hugging Face hub" in line and "HF_TOKEN" in line
    assert "--dataset-path gpqa_diamond=FILE.csv" in line


def test_hub_without_huggingface_hub_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(DataError) as err:
        Aime24().load()
    assert "needs huggingface_hub" in err.value.line() and "--dataset-path aime24=PATH" in err.value.line()


def test_hub_cache_is_used_offline(tmp_path):
    """A dataset already in the huggingface_hub cache loads with the hub switched off."""
    pytest.importorskip("huggingface_hub")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--math-ai--aime25"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "test.jsonl").write_text("".join(json.dumps({"problem": f"Made-up {i}", "answer": str(i), "id": str(i)}) + "\n"
                                             for i in range(30)))
    code = ("from lmgauge_benchmarks.aime import Aime25; s = Aime25().load(); "
            "print(len(s), s[0].id, s[0].gold, s[0].subsets[0], s[29].subsets[0])")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["30", "0", "0", "AIME2025-I", "AIME2025-II"]


def test_bad_files_are_one_line(tmp_path):
    cases = []
    (tmp_path / "x.xlsx").write_text("x")
    cases.append(("x.xlsx", "unknown file format .xlsx"))
    (tmp_path / "b.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n{oops\n')
    cases.append(("b.jsonl", "line 2 is not valid JSON"))
    (tmp_path / "l.json").write_text('{"problem": "1+1"')
    cases.append(("l.json", "not valid JSON"))
    (tmp_path / "s.json").write_text('"just a string"')
    cases.append(("s.json", "must hold a list of rows"))
    (tmp_path / "n.jsonl").write_text('[1, 2]\n')
    cases.append(("n.jsonl", "row 1 is a list"))
    (tmp_path / "e.jsonl").write_text("\n")
    cases.append(("e.jsonl", "holds no rows"))
    (tmp_path / "f.jsonl").write_text('{"question": "1+1", "solution": "2"}\n')
    cases.append(("f.jsonl", "none of the fields answer"))
    (tmp_path / "d").mkdir()
    cases.append(("d", "is a directory"))
    cases.append(("missing.jsonl", "no such file"))
    for name, needle in cases:
        with pytest.raises(DataError) as err:
            Math500().load(str(tmp_path / name))
        line = err.value.line()
        assert needle in line and f"--dataset-path math_500={tmp_path / name}" in line and "\n" not in line, line
    wrong_columns = tmp_path / "q.csv"
    wrong_columns.write_text("Q,A\nx,y\n")
    with pytest.raises(DataError) as err:
        GPQADiamond().load(str(wrong_columns))
    assert "row 1 has none of the fields Question (columns found: Q, A)" in err.value.line()


def test_cli_offline_gpqa_is_one_line():
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "gpqa_diamond",
                   env={"LMGAUGE_PLUGINS": "gpqa_diamond,openai", "HF_HUB_OFFLINE": "1"})
    assert_one_line_error(proc, "gpqa_diamond", "--dataset-path gpqa_diamond=FILE.csv")


def test_cli_unknown_format_is_one_line(tmp_path):
    bad = tmp_path / "aime.xlsx"
    bad.write_text("x")
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "aime24",
                   "--dataset-path", f"aime24={bad}", env={"LMGAUGE_PLUGINS": "aime24,openai"})
    assert_one_line_error(proc, "unknown file format .xlsx", f"aime24={bad}")


# --------------------------------------------------------------------------- plugin contract


ALL = {"math_500": Math500, "gpqa_diamond": GPQADiamond, "aime24": Aime24, "aime25": Aime25}


def test_one_entry_point_per_benchmark():
    pm = PluginManager(only=list(ALL))
    assert set(ALL) <= set(pm.names("benchmarks"))
    for name, cls in ALL.items():
        bench = pm.get("benchmarks", name)
        assert type(bench) is cls and isinstance(bench, Benchmark)
        info = next(p for p in pm.plugins if p.name == name)
        assert info.distribution == "lmgauge-benchmarks" and info.error is None
        assert info.registers == {"benchmarks": [name]}


def test_benchmarks_are_cheap_to_pickle_after_loading(tmp_path):
    path = write_gpqa(tmp_path / "g.csv", made_up_gpqa(10))
    for bench, arg in ((Math500(), None), (GPQADiamond(), str(path))):
        bench.load(arg)
        blob = pickle.dumps(bench)
        assert len(blob) < 200, (bench.name, len(blob))
        assert type(pickle.loads(blob)) is type(bench)


def _score_in_worker(args):
    import threading

    bench, sample, text = args
    score = bench.score(sample, Completion(text))
    return threading.current_thread() is threading.main_thread(), score


def test_score_runs_in_a_spawned_worker_process():
    samples = Math500().load()
    s = next(x for x in samples if x.gold == "\\frac{14}{3}")
    jobs = [(Math500(), s, "<think>\\boxed{3}</think> So \\boxed{\\dfrac{28}{6}}"),
            (Math500(), s, "<think>\\boxed{\\frac{14}{3}}</think> So \\boxed{4.6667}")]
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        (main1, right), (main2, wrong) = pool.map(_score_in_worker, jobs)
    assert main1 and main2
    assert right.correct and right.extracted == "\\dfrac{28}{6}"
    assert not wrong.correct and wrong.extracted == "4.6667"
