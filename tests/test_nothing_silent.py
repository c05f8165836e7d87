"""Nothing silent (issue [2/6]): each defect a hostile new user found, from the user's side
(the command, its exit code, its one line), and the rule behind it:

- no rerun, resume, concurrent run or report may mix two runs' data or overwrite a run's files;
- no failure of lmgauge's own machinery may become a verdict;
- a run that measured nothing never exits 0 (exit codes: docs/outputs.md).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LMGAUGE, REPO, assert_one_line_error, run_cli
from test_core_plugins import make_dist, pip_install

ENV = {"LMGAUGE_PLUGINS": "math_500,openai,json,sqlite,export_command,openqa,random,custom_math"}


@pytest.fixture(scope="module")
def samples():
    from lmgauge.plugins import PluginManager

    return PluginManager(only=["math_500"]).get("benchmarks", "math_500").load()[:4]


def right(samples) -> dict:
    return {s.prompt: [f"\\boxed{{{s.gold}}}"] for s in samples}


def journal(out: Path) -> bytes:
    return (out / "samples.jsonl").read_bytes()


def evald(url: str, model: str, out: Path, *extra: str, env: dict | None = None, **kw):
    return run_cli("eval", "--base-url", url, "--model", model, "--benchmark", "math_500", "--limit", "4",
                   "--no-progress", "--grading-workers", "1", "--output", str(out), *extra, env={**ENV, **(env or {})}, **kw)


# -- 1. a folder that holds a run is never reused silently -------------------------------------------
def test_a_rerun_into_a_run_folder_is_refused_and_changes_nothing(eval_server, samples, tmp_path):
    a = eval_server({"model": "model-a", "answers": right(samples)})
    b = eval_server({"model": "model-b", "answers": right(samples)})
    out = tmp_path / "run"
    evald(a.base_url, "model-a", out, check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for extra in ((b.base_url, "model-b"), (a.base_url, "model-a", "--temperature", "0.9")):
        proc = evald(extra[0], extra[1], out, *extra[2:])
        assert_one_line_error(proc, "already holds a eval run of model-a", f"--resume {out}")
    proc = run_cli("eval", "--base-url", a.base_url, "--model", "model-a", "--benchmark", "aime25=custom_math:"
                   + str(REPO / "plugins/benchmarks/lmgauge_benchmarks/data/demo_math.jsonl"), "--output", str(out),
                   env=ENV)
    assert_one_line_error(proc, "already holds")
    assert b.log() == []  # model B's server got nothing
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # a perf rerun into a perf folder too
    perf = tmp_path / "perf"
    url = a.base_url + "/chat/completions"
    run_cli("perf", "--url", url, "--model", "model-a", "--number", "2", "--output", str(perf), env=ENV, check=True)
    assert_one_line_error(run_cli("perf", "--url", url, "--model", "model-a", "--number", "3", "--output", str(perf),
                                  env=ENV), "already holds a perf run")
    # and an eval into a perf folder (or a perf into an eval folder)
    assert_one_line_error(evald(a.base_url, "model-a", perf), "already holds a perf run")
    assert_one_line_error(run_cli("perf", "--url", url, "--model", "model-a", "--output", str(out), env=ENV),
                          "already holds a eval run")


def test_resume_refuses_another_output_and_perf_folders(eval_server, samples, tmp_path):
    a = eval_server({"model": "m", "answers": right(samples)})
    out = tmp_path / "run"
    evald(a.base_url, "m", out, check=True)
    assert_one_line_error(run_cli("eval", "--resume", str(out), "--output", str(tmp_path / "other"), env=ENV),
                          "--output names another")
    perf = tmp_path / "perf"
    run_cli("perf", "--url", a.base_url + "/chat/completions", "--model", "m", "--number", "2", "--output", str(perf),
            env=ENV, check=True)
    assert_one_line_error(run_cli("eval", "--resume", str(perf), env=ENV), "perf run folder")


def test_a_resume_from_elsewhere_keeps_the_folder_name(eval_server, samples, tmp_path):
    server = eval_server({"model": "m", "answers": right(samples), "faults": {samples[0].prompt: ["400"]}})
    run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "4",
            "--no-progress", "--output", "runs/r", env=ENV, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_cli("eval", "--resume", str(tmp_path / "runs" / "r"), "--no-progress", env=ENV, cwd=elsewhere, check=True)
    import yaml

    assert yaml.safe_load((tmp_path / "runs" / "r" / "config.yaml").read_text())["output"] == "runs/r"


# -- 5. one writer per folder ------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_first_and_a_stale_lock_is_taken_over(eval_server, samples, tmp_path):
    slow = eval_server({"model": "m", "answers": right(samples), "delay": 1.5, "max_in_flight": 1})
    out = tmp_path / "run"
    first = subprocess.Popen([*LMGAUGE, "eval", "--base-url", slow.base_url, "--model", "m", "--benchmark", "math_500",
                              "--limit", "4", "--no-progress", "--output", str(out)], env={**os.environ, **ENV},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if (out / ".lmgauge.lock").exists() and (out / "run.json").exists():
                break
            time.sleep(0.05)
        second = evald(slow.base_url, "m", out)
        assert_one_line_error(second, f"pid {first.pid}", "being written")
        second_resume = run_cli("eval", "--resume", str(out), env=ENV)
        assert_one_line_error(second_resume, f"pid {first.pid}")
        assert first.wait(120) == 0
    finally:
        first.kill()
        first.communicate()
    lines = journal(out).decode().splitlines()
    assert len(lines) == 4 and len({(json.loads(x)["sample_id"], json.loads(x)["repeat"]) for x in lines}) == 4
    assert not (out / ".lmgauge.lock").exists()  # released at the end
    # a lock left by a process that died without releasing it (kill -9) is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / ".lmgauge.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename,
                                                   "started": time.time(), "command": "eval"}))
    assert run_cli("eval", "--resume", str(out), "--no-progress", env=ENV).returncode == 0


# -- 2. a grader failure is never a verdict -----------------------------------------------------------
DYING = '''
import os
from lmgauge.plugin import Benchmark, Sample, Score, hookimpl


class Dying(Benchmark):
    name = "dying"

    def load(self, path=None):
        return [Sample(id=f"q{i}", benchmark=self.name, prompt=f"What is {i}?", gold=str(i)) for i in range(4)]

    def score(self, sample, completion):
        if os.environ.get("DYING_MODE") == "die" or sample.id == "q0":
            os._exit(3)  # the grading worker process dies
        if os.environ.get("DYING_MODE") == "raise":
            raise RuntimeError("grader bug")
        return Score(1.0 if completion.text.strip() == sample.gold else 0.0, completion.text.strip())


@hookimpl
def register_benchmarks(register):
    register(Dying())
'''


@pytest.fixture(scope="module")
def dying_site(tmp_path_factory):
    root, target = tmp_path_factory.mktemp("dists"), tmp_path_factory.mktemp("site")
    pip_install(target, make_dist(root, "lmgauge-dying", "lmgauge_dying", DYING))
    return target


@pytest.mark.parametrize("mode", ["raise", "die"])
def test_graders_that_cannot_run_are_errors_and_the_run_fails(eval_server, dying_site, tmp_path, mode):
    server = eval_server({"model": "m", "answers": {f"What is {i}?": [str(i)] for i in range(4)}})
    out = tmp_path / mode
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "dying", "--no-progress",
                   "--grading-workers", "1", "--output", str(out),
                   env={"PYTHONPATH": str(dying_site), "LMGAUGE_PLUGINS": "lmgauge_dying,openai", "DYING_MODE": mode})
    assert proc.returncode == 4, proc.stderr
    assert_one_line_error(proc, "0 of 4 samples have a verdict", "4 could not be graded", "regrade")
    report = json.loads((out / "report.json").read_text())
    b = report["benchmarks"][0]
    assert (b["graded"], b["grader_errors"], b["errors"]) == (0, 4, 0)
    assert report["results"][-1]["count"] == 0  # no wrong answer was scored
    recs = [json.loads(x) for x in journal(out).decode().splitlines()]
    assert {r["score_status"] for r in recs} == {"error"} and all(r["grade_detail"].startswith("grader error") for r in recs)


def test_one_dying_sample_is_counted_and_the_others_graded(eval_server, dying_site, tmp_path):
    server = eval_server({"model": "m", "answers": {f"What is {i}?": [str(i)] for i in range(4)}})
    out = tmp_path / "one"
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "dying", "--no-progress",
                   "--grading-workers", "1", "--output", str(out),
                   env={"PYTHONPATH": str(dying_site), "LMGAUGE_PLUGINS": "lmgauge_dying,openai"})
    assert proc.returncode == 0, proc.stderr
    assert "1 grader errors" in proc.stdout and "could not be graded" in proc.stdout
    b = json.loads((out / "report.json").read_text())["benchmarks"][0]
    assert (b["graded"], b["grader_errors"]) == (3, 1)


def test_evaluate_at_a_scripts_top_level_grades_as_under_the_guard(eval_server, samples, tmp_path):
    server = eval_server({"model": "m", "answers": right(samples)})
    script = tmp_path / "script.py"
    script.write_text(f"import lmgauge\nr = lmgauge.evaluate(base_url={server.base_url!r}, model='m', "
                      f"benchmark='math_500', limit=4, output={str(tmp_path / 'api')!r}, grading_workers=2)\n"
                      "print('SCORE', r.score('math_500'))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ENV}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SCORE 1.0" in proc.stdout


# -- 3. a run that measured nothing never exits 0 ------------------------------------------------------
def test_an_eval_whose_every_request_failed_exits_4_quoting_the_error(eval_server, samples, tmp_path):
    server = eval_server({"model": "m", "faults": {s.prompt: ["500"] * 10 for s in samples}})
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("retries: 1\nretry_backoff: 0.01\n")
    proc = evald(server.base_url, "m", tmp_path / "run", "--config", str(cfg))
    assert proc.returncode == 4
    assert_one_line_error(proc, "0 of 4 samples have a verdict", "HTTP 500: internal error", "--resume")
    assert "most common error (4×): HTTP 500" in proc.stdout  # the table's note quotes it too


def test_a_perf_run_where_nothing_succeeded_exits_4(stream_server, tmp_path):
    url = stream_server()
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--prompt", "FAULT:500", "--number", "4",
                   "--output", str(tmp_path / "p"), env=ENV)
    assert proc.returncode == 4
    assert_one_line_error(proc, "only 0 of 4 requests succeeded", "HTTP 500")
    assert (tmp_path / "p" / "summary.json").exists()


# -- 4. a report never overwrites a run's files --------------------------------------------------------
def test_report_output_cannot_be_a_runs_own_file(eval_server, samples, tmp_path):
    server = eval_server({"model": "m", "answers": right(samples)})
    out = tmp_path / "run"
    evald(server.base_url, "m", out, check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for target in ("report.json", "samples.jsonl", "config.yaml", "run.json"):
        assert_one_line_error(run_cli("report", str(out), "-o", str(out / target), env=ENV), "own file")
    assert_one_line_error(run_cli("report", str(out), "-o", str(tmp_path / "x" / "samples.jsonl"), env=ENV), "own file")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert run_cli("report", str(out), "-o", str(tmp_path / "ab.html"), env=ENV).returncode == 0


# -- 6 and 7. crashes and values nobody checked ------------------------------------------------------
def test_bad_values_from_files_and_python_are_one_line(eval_server, samples, tmp_path):
    server = eval_server({"model": "m", "answers": right(samples)})
    hot = tmp_path / "hot.yaml"
    hot.write_text("temperature: hot\n")
    assert_one_line_error(evald(server.base_url, "m", tmp_path / "a", "--config", str(hot)), "temperature", "number")
    assert_one_line_error(evald(server.base_url, "m", tmp_path / "b", "--timeout", "-5"), "timeout must be > 0")
    assert_one_line_error(evald(server.base_url, "m", tmp_path / "c", "--export", "nosuch"), "unknown exporter 'nosuch'")
    assert server.log() == []  # none of them sent a request
    code = ("import lmgauge\nfrom lmgauge.errors import ConfigError\n"
            f"try:\n    lmgauge.evaluate(base_url={server.base_url!r}, model='m', benchmark='math_500', temperature='hot')\n"
            "except ConfigError as e:\n    print('ERR', e.line())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **ENV},
                          timeout=120)
    assert "ERR temperature" in proc.stdout, proc.stdout + proc.stderr


def test_dataset_path_in_a_config_file_and_in_python(eval_server, samples, tmp_path):
    data = tmp_path / "algebra.jsonl"
    data.write_bytes("\ufeff".encode() + b'{"question": "What is 2+3?", "answer": "5"}\n')  # a UTF-8 BOM
    server = eval_server({"model": "m", "answers": {}, "default": "\\boxed{5}"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"dataset_path: custom_math={data}\n")
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "custom_math", "--config",
                   str(cfg), "--no-progress", "--output", str(tmp_path / "yaml"), env=ENV)
    assert proc.returncode == 0, proc.stderr
    code = ("import lmgauge\n"
            f"r = lmgauge.evaluate(base_url={server.base_url!r}, model='m', benchmark='custom_math', "
            f"dataset_path='custom_math={data}', output={str(tmp_path / 'py')!r})\nprint('SCORE', r.score('custom_math'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **ENV},
                          timeout=300)
    assert "SCORE 1.0" in proc.stdout, proc.stderr


def test_collections_with_zero_weights_or_a_benchmarks_name_are_one_line(eval_server, tmp_path):
    server = eval_server({"model": "m"})
    for text, needle in (("benchmarks:\n  - {name: aime24, weight: 0}\n  - {name: aime25, weight: 0}\n", "every weight is 0"),
                         ("name: aime24\nbenchmarks:\n  - aime24\n  - aime25\n", "named 'aime24', like one of its")):
        coll = tmp_path / "c.yaml"
        coll.write_text(text)
        assert_one_line_error(run_cli("eval", "--base-url", server.base_url, "--model", "m", "--collection", str(coll),
                                      "--output", str(tmp_path / "o"), env={"LMGAUGE_PLUGINS": "aime24,aime25,openai"}),
                              needle)


def test_a_double_ctrl_c_saves_and_leaves_without_a_traceback(eval_server, samples, tmp_path):
    slow = eval_server({"model": "m", "answers": right(samples), "delay": 0.8, "max_in_flight": 1})
    out = tmp_path / "run"
    proc = subprocess.Popen([*LMGAUGE, "eval", "--base-url", slow.base_url, "--model", "m", "--benchmark", "math_500",
                             "--limit", "4", "--no-progress", "--output", str(out)], env={**os.environ, **ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if (out / "samples.jsonl").exists() and journal(out):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err and "Exception ignored" not in err and "Unclosed" not in err, err
    assert f"--resume {out}" in err
    assert journal(out)


# -- 8. messages that said the wrong thing ------------------------------------------------------------
def test_an_html_page_is_named_as_such(eval_server, samples, stream_server, tmp_path):
    url = stream_server()
    run_cli("perf", "--url", url, "--model", "perf-model", "--prompt", "FAULT:html please", "--number", "2",
            "--output", str(tmp_path / "p"), env=ENV)
    s = json.loads((tmp_path / "p" / "summary.json").read_text())["runs"][0]
    assert s["failures"] == {"not an event stream": 2}
    assert "text/html" in s["failure_examples"]["not an event stream"]
    server = eval_server({"model": "m", "faults": {x.prompt: ["html"] * 10 for x in samples}})
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("retries: 0\n")
    evald(server.base_url, "m", tmp_path / "e", "--config", str(cfg))
    recs = [json.loads(x) for x in journal(tmp_path / "e").decode().splitlines()]
    assert all("text/html" in r["error"] and "not JSON" in r["error"] for r in recs)


def test_few_requests_at_high_concurrency_say_so(stream_server, tmp_path):
    proc = run_cli("perf", "--url", stream_server(), "--model", "perf-model", "--concurrency", "8", "--number", "2",
                   "--output", str(tmp_path / "p"), env=ENV, check=True)
    assert "at most 2 were ever in flight" in proc.stdout
    assert "at most 2" in json.loads((tmp_path / "p" / "summary.json").read_text())["runs"][0]["notes"][0]


def test_an_unknown_hub_tokenizer_offline_is_one_line_at_once(tmp_path):
    proc = run_cli("perf", "--url", "http://127.0.0.1:9/v1/chat/completions", "--model", "m", "--tokenizer",
                   "org/no-such-tokenizer", env={**ENV, "HF_HUB_OFFLINE": "1"})
    assert_one_line_error(proc, "org/no-such-tokenizer", "HF_HUB_OFFLINE")
