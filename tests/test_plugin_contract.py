"""The plugin contract as a third-party author meets it.

- docs/plugins.md's complete example (a benchmark, a metric, a backend, a perf dataset, an
  exporter and a command, each with an option of its own) is built from the page's code blocks
  exactly as written, pip-installed, and driven from the CLI (eval, perf, export, --config,
  lmgauge.evaluate): every option value must reach its plugin.
- Two distributions declaring the same flag: one error naming both.
- The wrong kind of object registered, an abstract method left out, a required option: the
  plugin is broken, named with its distribution, and the rest works.
- One-off plugin files (--plugin FILE, LMGAUGE_PLUGINS_DIR), graded in worker processes.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO, assert_one_line_error, run_cli
from test_core_plugins import make_dist, pip_install

DOC = REPO / "docs" / "plugins.md"
ACME = "acme_doubling,acme_worst,acme_echo,acme_numbers,acme_csv,acme_count,export_command"


def doc_files() -> dict[str, str]:
    """``{file name: content}`` of every code block on docs/plugins.md introduced by a line
    that starts with the file's name in backticks."""
    files: dict[str, str] = {}
    name, block = None, None
    for line in DOC.read_text(encoding="utf-8").splitlines(keepends=True):
        if block is not None:
            if line.startswith("```"):
                if name:
                    files[name] = "".join(block)
                name, block = None, None
            else:
                block.append(line)
        elif line.startswith("```"):
            block = []
        else:
            m = re.match(r"`([\w/-]+\.(?:py|cfg|toml|yaml))`", line)
            if m:
                name = m.group(1)
    return files


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    files = doc_files()
    expected = {"acme_lmgauge/doubling.py", "acme_lmgauge/worst.py", "acme_lmgauge/echo.py",
                "acme_lmgauge/numbers.py", "acme_lmgauge/csv_export.py", "acme_lmgauge/command.py",
                "setup.cfg", "pyproject.toml", "acme.yaml"}
    assert expected <= set(files), sorted(expected - set(files))
    src = tmp_path_factory.mktemp("acme-src")
    for name, content in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(content)
    (src / "acme_lmgauge" / "__init__.py").write_text("")
    site = tmp_path_factory.mktemp("acme-site")
    pip_install(site, src)
    return {"site": site, "src": src}


def acme_env(acme, plugins: str = ACME) -> dict:
    return {"PYTHONPATH": str(acme["site"]), "LMGAUGE_PLUGINS": plugins}


def scores(run: Path) -> dict:
    report = json.loads((run / "report.json").read_text())
    return {(r["benchmark"], r["subset"], r["metric"]): r for r in report["results"]}


def test_every_family_listed_with_its_registrations(acme):
    info = {p["name"]: p for p in json.loads(run_cli("plugins", "--json", env=acme_env(acme), check=True).stdout)}
    assert info["acme_doubling"]["registers"] == {"benchmarks": ["doubling"]}
    assert info["acme_worst"]["registers"] == {"metrics": ["worst@k"]}
    assert info["acme_echo"]["registers"] == {"backends": ["acme_echo"]}
    assert info["acme_numbers"]["registers"] == {"datasets": ["acme_numbers"]}
    assert info["acme_csv"]["registers"] == {"exporters": ["acme_csv"]}
    assert all(p["distribution"] == "lmgauge-acme" and p["error"] is None for n, p in info.items() if n.startswith("acme"))


def test_help_groups_options_per_plugin(acme):
    text = run_cli("eval", "--help", env=acme_env(acme), check=True).stdout
    for title, flag in (("Options of the doubling benchmark (lmgauge-acme)", "--acme-questions"),
                        ("Options of the worst@k metric (lmgauge-acme)", "--acme-worst-need"),
                        ("Options of the acme_echo backend (lmgauge-acme)", "--acme-wrong-every"),
                        ("Options of the acme_csv exporter (lmgauge-acme)", "--acme-csv-delimiter")):
        assert title in text and text.index(flag) > text.index(title), title
    assert "--acme-max-number" not in text  # a perf dataset's option is not an eval option
    perf_help = run_cli("perf", "--help", env=acme_env(acme), check=True).stdout
    assert "Options of the acme_numbers perf dataset (lmgauge-acme)" in perf_help and "--acme-questions" not in perf_help
    assert "--acme-csv-delimiter" in run_cli("export", "--help", env=acme_env(acme), check=True).stdout


def test_eval_options_reach_benchmark_backend_metric_and_exporter(acme, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("eval", "--backend", "acme_echo", "--model", "any", "--benchmark", "doubling",
                   "--acme-questions", "6", "--repeats", "2", "--acme-wrong-every", "3", "--metric", "AveragePass@1",
                   "--metric", "worst@k", "--acme-worst-need", "3", "--export", "acme_csv", "--acme-csv-delimiter", ";",
                   "--output", str(out), "--no-progress", env=acme_env(acme), check=True)
    s = scores(out)
    assert s[("doubling", "OVERALL", "AveragePass@1")]["count"] == 6          # --acme-questions reached load()
    assert s[("doubling", "OVERALL", "AveragePass@1")]["score"] == pytest.approx(8 / 12)  # 4 of 12 answers wrong
    assert s[("doubling", "OVERALL", "worst@2")]["score"] == 0.0              # need 3 of 2 repeats: never
    rows = list(csv.reader((out / "acme.csv").open(), delimiter=";"))        # the exporter's delimiter
    assert rows[0] == ["benchmark", "subset", "metric", "score"] and len(rows) == 1 + len(s)
    assert "export acme_csv: wrote" in proc.stdout
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["acme_questions"] == 6 and saved["acme_wrong_every"] == 3 and saved["acme_csv_delimiter"] == ";"
    # the command of the plugin, and lmgauge export with the exporter's option
    assert run_cli("acme-count", str(out), env=acme_env(acme), check=True).stdout.strip() == "run: 12 graded samples"
    target = tmp_path / "scores.csv"
    run_cli("export", str(out), "--to", "acme_csv", "--acme-csv-delimiter", "|", "--export-path", str(target),
            env=acme_env(acme), check=True)
    assert target.read_text().splitlines()[0] == "benchmark|subset|metric|score"
    # without the flag, lmgauge export uses the value the run was made with
    again = tmp_path / "again.csv"
    run_cli("export", str(out), "--to", "acme_csv", "--export-path", str(again), env=acme_env(acme), check=True)
    assert again.read_text().splitlines()[0] == "benchmark;subset;metric;score"


def test_config_file_and_evaluate_take_the_same_options(acme, tmp_path):
    cfg = tmp_path / "acme.yaml"
    cfg.write_text(doc_files()["acme.yaml"])
    out = tmp_path / "from-config"
    run_cli("eval", "--config", str(cfg), "--output", str(out), "--no-progress", env=acme_env(acme), check=True)
    s = scores(out)
    assert s[("doubling", "OVERALL", "AveragePass@1")]["count"] == 6
    assert s[("doubling", "OVERALL", "AveragePass@1")]["score"] == pytest.approx(4 / 6)  # 2 of 6 wrong
    # a flag overrides the file
    out2 = tmp_path / "override"
    run_cli("eval", "--config", str(cfg), "--acme-questions", "4", "--output", str(out2), "--no-progress",
            env=acme_env(acme), check=True)
    assert scores(out2)[("doubling", "OVERALL", "AveragePass@1")]["count"] == 4
    # a bad value in the file: one line naming the file and the key, checked by the click type
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: acme_echo\nmodel: any\nbenchmark: [doubling]\nacme_questions: lots\n")
    assert_one_line_error(run_cli("eval", "--config", str(bad), env=acme_env(acme)), "bad.yaml", "acme_questions",
                          "not a valid integer")
    # lmgauge.evaluate(**kwargs), in a fresh interpreter
    code = textwrap.dedent(f"""
        import lmgauge
        r = lmgauge.evaluate(backend="acme_echo", model="any", benchmark="doubling", acme_questions="5",
                             acme_wrong_every=5, output={str(tmp_path / "api")!r})
        print(r.score("doubling", "AveragePass@1"), [x for x in r.results if x.subset == "OVERALL"][0].count)
        try:
            lmgauge.evaluate(backend="acme_echo", model="any", benchmark="doubling", acme_questions=0,
                             output={str(tmp_path / "api2")!r})
        except lmgauge.plugin.ConfigError as exc:
            print("ERR", exc.line())
        """)
    res = subprocess.run([sys.executable, "-c", "import lmgauge.plugin\n" + code], capture_output=True, text=True,
                         env={**acme_env(acme), "PATH": "/usr/bin:/bin"}, check=True)
    first, err = res.stdout.strip().splitlines()
    assert first == "0.8 5"  # "5" was converted by the option's IntRange type; 1 of 5 wrong
    assert err.startswith("ERR lmgauge.evaluate(): acme_questions:") and "1<=x<=100" in err


def test_perf_takes_dataset_and_backend_options(acme, tmp_path):
    out = tmp_path / "perf"
    run_cli("perf", "--backend", "acme_echo", "--model", "any", "--dataset", "acme_numbers", "--acme-max-number", "9",
            "--number", "20", "--acme-wrong-every", "2", "--output", str(out), "--export", "acme_csv",
            "--acme-csv-delimiter", "\t", env=acme_env(acme), check=True)
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert run["succeeded"] == 20
    # "The answer is N." with N = 2n (+1 on every 2nd request): 4 words each
    assert run["avg_output_tokens"] == 4
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["acme_max_number"] == 9 and saved["acme_wrong_every"] == 2
    rows = list(csv.reader((out / "acme.csv").open(), delimiter="\t"))
    assert rows[0] == ["concurrency", "rate", "requests_per_s"] and len(rows) == 2
    # --acme-max-number reached the dataset: prompts ask about numbers 1..9 only
    import sqlite3

    n_requests = sqlite3.connect(out / "perf.sqlite").execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    assert n_requests == 20
    assert_one_line_error(run_cli("perf", "--backend", "acme_echo", "--model", "any", "--dataset", "acme_numbers",
                                  "--acme-max-number", "0", env=acme_env(acme)), "--acme-max-number")


CLASH = '''
import click
from lmgauge.plugin import Exporter, hookimpl

class {cls}(Exporter):
    name = "{name}"
    options = [click.Option(["--shared-flag", "{param}"], default=None)]
    def export(self, run_dir, options):
        return None

@hookimpl
def register_exporters(register):
    register({cls}())
'''

WRONG_KIND = '''
from lmgauge.plugin import Benchmark, Exporter, hookimpl

class Half(Exporter):
    name = "half"          # export() left out: abstract

class Q(Benchmark):
    name = "q"
    def load(self, path=None):
        return []
    def score(self, sample, completion):
        return None

@hookimpl
def register_backends(register):
    register(Q())         # a benchmark, registered as a backend
'''


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-src")
    site = tmp_path_factory.mktemp("bad-site")
    a = make_dist(root, "clash-one", "clash_one", CLASH.format(cls="One", name="one", param="shared_flag"))
    b = make_dist(root, "clash-two", "clash_two", CLASH.format(cls="Two", name="two", param="other_name"))
    wrong = make_dist(root, "wrong-kind", "wrong_kind", WRONG_KIND)
    half = make_dist(root, "half-done", "half_done", WRONG_KIND.replace("register(Q())", "pass").replace(
        "def register_backends", "def register_exporters").replace("    pass", "    register(Half)"))
    pip_install(site, a, b, wrong, half)
    return site


def test_two_distributions_declaring_one_flag_is_one_error(bad_site):
    proc = run_cli("plugins", env={"PYTHONPATH": str(bad_site), "LMGAUGE_PLUGINS": "clash_one,clash_two"})
    assert_one_line_error(proc, "--shared-flag", "declared twice", "clash-one", "clash-two")
    # each alone is fine
    assert run_cli("plugins", env={"PYTHONPATH": str(bad_site), "LMGAUGE_PLUGINS": "clash_one"}).returncode == 0


def test_wrong_kind_or_abstract_registration_breaks_only_that_plugin(bad_site, eval_server, tmp_path):
    env = {"PYTHONPATH": str(bad_site), "LMGAUGE_PLUGINS": "wrong_kind,half_done,openai,math_500"}
    listing = run_cli("plugins", env=env, check=True).stdout
    assert re.search(r"wrong_kind\s+BROKEN: plugin 'wrong_kind' \(wrong-kind\) registered .*as a backend, but it is not "
                     r"a lmgauge.plugin.Backend", listing), listing
    assert re.search(r"half_done\s+BROKEN: plugin 'half_done' \(half-done\): Half does not implement export", listing)
    server = eval_server({"model": "m", "default": "\\boxed{1}"})
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "2",
                   "--output", str(tmp_path / "r"), "--no-progress", env=env, check=True)
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("lmgauge: warning: plugin")]
    assert len(warnings) == 2 and "(wrong-kind)" in warnings[1 if "half" in warnings[0] else 0]


ONE_OFF = '''
import re
from lmgauge.plugin import Benchmark, Sample, Score, hookimpl

class Triples(Benchmark):
    name = "triples"
    def load(self, path=None):
        return [Sample(id=str(i), benchmark=self.name, prompt=f"What is {i} + {i}?", gold=str(2 * i)) for i in (1, 2, 3)]
    def score(self, sample, completion):          # runs in a grading worker process
        found = re.findall(r"\\d+", completion.text)
        return Score(1.0 if found and found[-1] == sample.gold else 0.0, found[-1] if found else None)

@hookimpl
def register_benchmarks(register):
    register(Triples())
'''


def test_one_off_plugin_files(eval_server, tmp_path):
    plug = tmp_path / "triples.py"
    plug.write_text(ONE_OFF)
    server = eval_server({"model": "m", "answers": {"What is 1 + 1?": ["2"], "What is 2 + 2?": ["4"],
                                                    "What is 3 + 3?": ["7"]}})
    env = {"LMGAUGE_PLUGINS": "openai"}
    out = tmp_path / "run"
    run_cli("--plugin", str(plug), "eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "triples",
            "--output", str(out), "--no-progress", env=env, check=True)
    assert scores(out)[("triples", "OVERALL", "AveragePass@1")]["score"] == pytest.approx(2 / 3)
    listing = run_cli("plugins", "--plugin", str(plug), env=env, check=True).stdout
    assert "file triples.py local" in listing and "benchmarks: triples" in listing
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "triples.py").write_text(ONE_OFF)
    out2 = tmp_path / "run2"
    run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "triples", "--output", str(out2),
            "--no-progress", env={**env, "LMGAUGE_PLUGINS_DIR": str(folder)}, check=True)
    assert scores(out2)[("triples", "OVERALL", "AveragePass@1")]["score"] == pytest.approx(2 / 3)
    assert_one_line_error(run_cli("--plugin", str(tmp_path / "nope.py"), "plugins", env=env), "--plugin", "no such file")
