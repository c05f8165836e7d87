"""The plugin contract, exercised with real distributions built and pip-installed in the test:
third-party benchmark + metric, name collisions, unknown names, broken plugins."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli

TINY_MODULE = '''
import re
from lmgauge import hookimpl
from lmgauge.interfaces import Benchmark, Metric
from lmgauge.types import Sample, Score


class TinyArith(Benchmark):
    name = "tiny_arith"
    description = "doubling questions (third-party test plugin)"

    def load(self, path=None):
        return [Sample(id=f"q{i}", benchmark=self.name, prompt=f"What is {i} + {i}?", gold=str(2 * i),
                       subsets=("even" if i % 2 == 0 else "odd",), question=f"{i} + {i}")
                for i in range(1, 7)]

    def score(self, sample, completion):
        nums = re.findall(r"-?\\d+", completion.text)
        got = nums[-1] if nums else None
        return Score(1.0 if got == sample.gold else 0.0, got)


class Worst(Metric):
    name = "worst@k"
    description = "1 only when every repeat is right"

    def label(self, k):
        return f"worst@{k}"

    def per_question(self, values, extracted, k):
        return float(min(values)) if values else 0.0


@hookimpl
def register_benchmarks(register):
    register(TinyArith())


@hookimpl
def register_metrics(register):
    register(Worst())
'''


def make_dist(root: Path, dist: str, module: str, source: str, entry: str | None = None) -> Path:
    src = root / dist
    src.mkdir(parents=True)
    (src / f"{module}.py").write_text(source)
    (src / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n')
    (src / "setup.cfg").write_text(textwrap.dedent(f"""
        [metadata]
        name = {dist}
        version = 1.2.3

        [options]
        py_modules = {module}

        [options.entry_points]
        lmgauge =
            {entry or module} = {module}
        """))
    return src


def pip_install(target: Path, *srcs: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), *map(str, srcs)], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder with third-party distributions really installed by pip."""
    root = tmp_path_factory.mktemp("dists")
    target = tmp_path_factory.mktemp("site")
    tiny = make_dist(root, "lmgauge-tiny", "lmgauge_tiny", TINY_MODULE)
    clash_a = make_dist(root, "clash-a", "clash_a", TINY_MODULE, entry="clash_a")
    clash_b = make_dist(root, "clash-b", "clash_b", TINY_MODULE, entry="clash_b")
    broken = make_dist(root, "lmgauge-broken", "lmgauge_broken",
                       "import lmgauge\nimport a_module_that_does_not_exist\n")
    pip_install(target, tiny, clash_a, clash_b, broken)
    return target


def env_for(site: Path, plugins: str) -> dict:
    return {"PYTHONPATH": str(site), "LMGAUGE_PLUGINS": plugins}


def test_plugins_lists_third_party_with_version_hooks_and_names(site):
    proc = run_cli("plugins", "--json", env=env_for(site, "lmgauge_tiny,openai"), check=True)
    info = {p["name"]: p for p in json.loads(proc.stdout)}
    tiny = info["lmgauge_tiny"]
    assert tiny["distribution"] == "lmgauge-tiny" and tiny["version"] == "1.2.3"
    assert tiny["hooks"] == ["register_benchmarks", "register_metrics"]
    assert tiny["registers"] == {"benchmarks": ["tiny_arith"], "metrics": ["worst@k"]}
    assert info["openai"]["registers"] == {"backends": ["openai"]}
    text = run_cli("plugins", env=env_for(site, "lmgauge_tiny"), check=True).stdout
    assert "lmgauge-tiny 1.2.3" in text and "tiny_arith" in text


def test_third_party_benchmark_and_metric_run_end_to_end(site, eval_server, tmp_path):
    # correct for 1..4 on both repeats, q5 right only on repeat 0, q6 always wrong
    answers = {f"What is {i} + {i}?": [f"The answer is {2 * i}."] * 2 for i in range(1, 5)}
    answers["What is 5 + 5?"] = ["10", "11"]
    answers["What is 6 + 6?"] = ["13"]
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "run"
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "tiny_arith",
                   "--repeats", "2", "--seed", "0", "--metric", "AveragePass@1", "--metric", "worst@k",
                   "--output", str(out), "--no-progress", env=env_for(site, "lmgauge_tiny,openai"), check=True)
    report = json.loads((out / "report.json").read_text())
    rows = {(r["subset"], r["metric"]): r for r in report["results"]}
    assert rows[("OVERALL", "AveragePass@1")]["score"] == pytest.approx((4 + 0.5) / 6)
    assert rows[("OVERALL", "worst@2")]["score"] == pytest.approx(4 / 6)
    assert rows[("odd", "worst@2")]["count"] == 3 and rows[("even", "worst@2")]["count"] == 3
    assert "worst@2" in proc.stdout and "tiny_arith" in proc.stdout


def test_name_collision_names_both_distributions(site):
    proc = run_cli("plugins", env=env_for(site, "clash_a,clash_b"))
    assert_one_line_error(proc, "registered twice", "clash-a", "clash-b")


def test_broken_plugin_is_reported_and_cli_keeps_working(site):
    proc = run_cli("plugins", env=env_for(site, "lmgauge_broken,lmgauge_tiny"), check=True)
    assert "lmgauge_broken" in proc.stdout and "BROKEN" in proc.stdout
    assert "a_module_that_does_not_exist" in proc.stdout
    assert "tiny_arith" in proc.stdout
    assert run_cli("--help", env=env_for(site, "lmgauge_broken")).returncode == 0


def test_unknown_benchmark_lists_installed(site):
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "nope",
                   env=env_for(site, "lmgauge_tiny,lmgauge_broken,openai"))
    # the broken plugin is named once as a warning (with its distribution), then the one error line
    warning, error = proc.stderr.strip().splitlines()
    assert warning.startswith("lmgauge: warning: plugin lmgauge_broken (lmgauge-broken) is broken"), warning
    assert_one_line_error(proc.__class__(proc.args, proc.returncode, proc.stdout, error),
                          "unknown benchmark 'nope'", "tiny_arith", "lmgauge_broken")


def test_unknown_backend_lists_installed(site):
    proc = run_cli("eval", "--backend", "nope", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                   "--benchmark", "tiny_arith", "--output", str(site.parent / "x"),
                   env=env_for(site, "lmgauge_tiny,openai"))
    assert_one_line_error(proc, "unknown backend 'nope'", "openai")


def test_help_does_not_import_torch():
    code = ("import sys, lmgauge.cli\n"
            "try:\n    lmgauge.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    lmgauge.cli.main(['eval', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = ('torch', 'transformers', 'lmdeploy', 'swanlab', 'wandb', 'mlflow', 'ray', 'scipy', 'numpy', "
            "'prometheus_client', 'jinja2', 'math_verify')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
