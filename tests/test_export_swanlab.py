"""The swanlab exporter in offline mode, read back from the files SwanLab wrote; and its
failures (not installed, no API key, plugin not loaded) as one clear line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from fixtures.runfolders import folder_state, make_eval_run, make_perf_run

from lmgauge import plugins as lm_plugins
from lmgauge.export import run_exporters


@pytest.fixture(autouse=True)
def fresh_manager(monkeypatch):
    monkeypatch.delenv("LMGAUGE_PLUGINS", raising=False)
    monkeypatch.delenv("LMGAUGE_SWANLAB_MODE", raising=False)
    monkeypatch.delenv("SWANLAB_API_KEY", raising=False)
    lm_plugins.reset_manager()
    yield
    lm_plugins.reset_manager()


def read_swanlab_run(log_dir: Path) -> tuple[dict, dict[str, list[tuple[int, float]]], bytes]:
    """(config, {metric key: [(step, value)]}, raw bytes of everything written) of the one
    run SwanLab wrote under ``log_dir``."""
    try:
        from swanlab.proto.swanlab.record.v1.record_pb2 import Record
        from swanlab.sdk.internal.core_python.store import DataStoreReader
    except ImportError as exc:  # a SwanLab version with another file format
        pytest.skip(f"cannot read this SwanLab version's run files: {exc}")
    runs = sorted(log_dir.glob("run-*"))
    assert len(runs) == 1, runs
    run = runs[0]
    config = {k: (v["value"] if isinstance(v, dict) and "value" in v else v)
              for k, v in yaml.safe_load((run / "files" / "config.yaml").read_text()).items()}
    scalars: dict[str, list[tuple[int, float]]] = {}
    (store,) = run.glob("*.swanlab")
    reader = DataStoreReader()
    reader.open(str(store))
    try:
        for blob in reader:
            rec = Record()
            rec.ParseFromString(blob)
            if rec.WhichOneof("record_type") == "scalar":
                scalars.setdefault(rec.scalar.key, []).append((rec.scalar.step, rec.scalar.value.number))
    finally:
        reader.close()
    raw = b"".join(p.read_bytes() for p in run.rglob("*") if p.is_file())
    return config, scalars, raw


def test_swanlab_offline_perf_one_step_per_level(tmp_path):
    pytest.importorskip("swanlab", reason="swanlab not installed (pip install 'lmgauge-exporters[swanlab]')")
    p = make_perf_run(tmp_path / "perf-run", levels=[1, 10, 50, 100])
    before = folder_state(p["dir"])
    out = tmp_path / "swan"
    lines = run_exporters(["swanlab"], str(p["dir"]),
                          {"swanlab_mode": "offline", "export_path": str(out), "swanlab_project": "perf-bench"})
    assert len(lines) == 1 and lines[0].startswith("export swanlab: offline: project perf-bench"), lines
    assert "4 steps" in lines[0]
    config, scalars, raw = read_swanlab_run(out / "swanlog")
    assert b"SECRET" not in raw and b"user:pw@" not in raw
    assert config["api_key"] == "***" and config["max_tokens"] == 32768
    assert config["lmgauge"]["model"] == "gpt-oss-20b" and config["lmgauge"]["kind"] == "perf"
    levels = p["summary"]["runs"]
    assert scalars["concurrency"] == [(i, float(lv["concurrency"])) for i, lv in enumerate(levels)]
    assert scalars["rps"] == [(i, pytest.approx(lv["request_throughput"])) for i, lv in enumerate(levels)]
    assert scalars["output_tok_s"] == [(i, pytest.approx(lv["output_token_throughput"])) for i, lv in enumerate(levels)]
    for metric in ("ttft", "tpot", "latency"):
        for pct in ("p50", "p90", "p99", "mean"):
            assert scalars[f"{metric}/{pct}"] == [(i, pytest.approx(lv[f"{metric}_s"][pct])) for i, lv in enumerate(levels)]
    assert scalars["success_rate"][-1][1] == pytest.approx(levels[-1]["succeeded"] / levels[-1]["requests"])
    assert folder_state(p["dir"]) == before


def test_swanlab_offline_eval_scores_default_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("swanlab", reason="swanlab not installed (pip install 'lmgauge-exporters[swanlab]')")
    e = make_eval_run(tmp_path / "eval-run")
    # a key on the command line must not reach SwanLab (it records argv unless told not to)
    monkeypatch.setattr(sys, "argv", ["lmgauge", "eval", "--api-key", "sk-ARGV-LEAK-0123456789"])
    print("terminal line ARGV-LEAK that SwanLab must not capture")
    lines = run_exporters(["swanlab"], str(e["dir"]), {"swanlab_mode": "offline"})
    assert sys.argv[-1] == "sk-ARGV-LEAK-0123456789"  # restored
    assert lines[0].startswith("export swanlab: offline: project lmgauge-eval"), lines
    config, scalars, raw = read_swanlab_run(e["dir"] / "swanlog")
    assert b"SECRET" not in raw
    # the command line and the terminal are not collected
    assert b"ARGV-LEAK" not in raw
    for r in e["report"]["results"]:
        key = f"{r['benchmark']}/{r['metric']}" if r["subset"] == "OVERALL" else f"{r['benchmark']}/{r['subset']}/{r['metric']}"
        assert scalars[key] == [(0, pytest.approx(r["score"]))]
        assert scalars[f"{key}/ci_low"] == [(0, pytest.approx(r["ci_low"]))]
    assert scalars["math_500/health/errors"] == [(0, 1.0)]


def test_swanlab_not_installed_is_one_line(tmp_path, monkeypatch):
    e = make_eval_run(tmp_path / "eval-run")
    before = folder_state(e["dir"])
    monkeypatch.setitem(sys.modules, "swanlab", None)  # import swanlab -> ImportError
    lines = run_exporters(["json", "swanlab"], str(e["dir"]), {"swanlab_mode": "offline"})
    assert lines[0].startswith("export json: wrote")
    assert lines[1] == ("lmgauge: warning: export swanlab failed: the swanlab exporter needs the swanlab package, "
                        "which is not installed (pip install 'lmgauge-exporters[swanlab]'); the run's own files "
                        f"are unchanged in {e['dir']}")
    after = folder_state(e["dir"])
    after.pop("export.json")
    assert after == before


def test_swanlab_cloud_without_key_is_one_line(tmp_path):
    pytest.importorskip("swanlab", reason="swanlab not installed")
    e = make_eval_run(tmp_path / "eval-run")
    lines = run_exporters(["swanlab"], str(e["dir"]), {})
    assert len(lines) == 1
    assert "neither --swanlab-api-key nor SWANLAB_API_KEY is set" in lines[0] and "--swanlab-mode offline" in lines[0]
    assert not (e["dir"] / "swanlog").exists()


def test_swanlab_plugin_not_loaded_via_lmgauge_plugins(tmp_path):
    """LMGAUGE_PLUGINS=json: the swanlab exporter is not there; the CLI says so in one line
    and exits 1, the json export still happens."""
    e = make_eval_run(tmp_path / "eval-run")
    proc = run_cli("export", str(e["dir"]), "--to", "json,swanlab", env={"LMGAUGE_PLUGINS": "json,export_command"},
                   timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("export json: wrote")
    err = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and err[0].startswith("lmgauge: warning: export swanlab failed: unknown exporter 'swanlab'")
    assert "installed: json" in err[0]
