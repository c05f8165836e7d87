"""The wandb and mlflow exporters, offline: W&B offline run files read back record by record
with W&B's own protobuf classes, MLflow's file store read back through ``MlflowClient``.
Values must equal the run's report, secrets must appear nowhere, the run's own files must stay
as they were; and the failure paths (library missing, bad option values, no W&B key, deleted
MLflow experiment) are one line each."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, assert_one_line_error, run_cli
from fixtures.runfolders import folder_state, make_eval_run, make_perf_run

from lmgauge import plugins as lm_plugins
from lmgauge.export import run_exporters
from lmgauge.htmlreport import write_html_report

from lmgauge_exporters.mlflow_exporter import MlflowExporter, _unique_keys, mlflow_key
from lmgauge_exporters.wandb_exporter import SAMPLE_COLUMNS, WandbExporter

LIVE_KEY = "sk-live-TRACKER-LEAK-0123456789abcdef"
PCTS = ("mean", "p50", "p90", "p99")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No user settings leak in, nothing lands in the real home (W&B stages artifact files and
    writes its service log under the user's data and cache folders)."""
    for var in ("LMGAUGE_PLUGINS", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_API_KEY", "WANDB_DIR",
                "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    for var, sub in (("HOME", ""), ("XDG_DATA_HOME", ".local/share"), ("XDG_CACHE_HOME", ".cache"),
                     ("XDG_CONFIG_HOME", ".config")):
        monkeypatch.setenv(var, str(home / sub))
    lm_plugins.reset_manager()
    yield home
    lm_plugins.reset_manager()


def with_report(run: dict[str, Any]) -> dict[str, Any]:
    write_html_report([str(run["dir"])], str(run["dir"] / "report.html"))
    return run


@pytest.fixture
def eval_run(tmp_path):
    return with_report(make_eval_run(tmp_path / "eval-run"))


@pytest.fixture
def perf_run(tmp_path):
    return with_report(make_perf_run(tmp_path / "perf-run", levels=[1, 4, 16, 64]))


def all_bytes(*folders: Path) -> bytes:
    return b"".join(p.read_bytes() for f in folders if f.exists() for p in sorted(f.rglob("*")) if p.is_file())


def own_files(run_dir: Path) -> dict:
    """folder_state of the run's own files (exports write next to them, in new folders)."""
    return {k: v for k, v in folder_state(run_dir).items() if not k.startswith(("wandb/", "mlruns/"))}


def score_key(r: dict[str, Any]) -> str:
    return f"{r['benchmark']}/{r['metric']}" if r["subset"] == "OVERALL" else \
        f"{r['benchmark']}/{r['subset']}/{r['metric']}"


# --------------------------------------------------------------------------------------
# W&B offline run files: a LevelDB-style log (github.com/google/leveldb doc/log_format.md:
# 32 KiB blocks of records with a crc32/length/type header) behind a 7-byte ":W&B" header,
# each record one wandb_internal_pb2.Record.
def wandb_records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    block, pos, pending, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += block - pos % block
            continue
        body = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + body) == checksum, f"bad record checksum at byte {pos}"
        pos += 7 + length
        pending = body if kind in (1, 2) else pending + body
        if kind in (1, 4):  # FULL or LAST: a whole record
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(pending)
            out.append(rec)
            pending = b""
    return out


def _put(d: dict, keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def read_wandb_run(export_root: Path) -> dict[str, Any]:
    """The one offline run W&B wrote under ``export_root/wandb``: its run record, config,
    history (step → {key: value}), artifacts ({name: (type, {path: bytes})}) and folder."""
    (offline,) = sorted((export_root / "wandb").glob("offline-run-*"))
    (log,) = offline.glob("run-*.wandb")
    run, config, history, artifacts = None, {}, {}, {}
    for rec in wandb_records(log):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run = rec.run
            for item in rec.run.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in rec.history.item:
                _put(row, list(item.nested_key) or [item.key], json.loads(item.value_json))
            history[row["_step"]] = row
        elif kind == "artifact":
            files = {c.path: Path(c.local_path).read_bytes() for c in rec.artifact.manifest.contents}
            artifacts[rec.artifact.name] = (rec.artifact.type, files)
    assert run is not None
    return {"run": run, "config": config, "history": history, "artifacts": artifacts, "dir": offline}


def wandb_table(wb: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    assert ref["_type"] == "table-file"
    return json.loads((wb["dir"] / "files" / ref["path"]).read_text(encoding="utf-8"))


def check_sample_table(table: dict[str, Any], records: list[dict[str, Any]]) -> None:
    assert table["columns"] == list(SAMPLE_COLUMNS)
    assert len(table["data"]) == len(records)
    rows = {(r[0], r[1], r[2]): dict(zip(SAMPLE_COLUMNS, r)) for r in table["data"]}
    for rec in records:
        row = rows[(rec["benchmark"], rec["sample_id"], rec["repeat"])]
        for col in ("score", "correct", "truncated", "extracted", "gold", "completion_tokens", "response"):
            assert row[col] == rec[col], (col, row, rec)
        assert row["status"] == ("error" if rec["error"] else "truncated" if rec["truncated"]
                                 else "correct" if rec["correct"] else "wrong")
    assert any(r[SAMPLE_COLUMNS.index("error")] for r in table["data"])


# --------------------------------------------------------------------------------------
# W&B
def test_wandb_offline_eval_scores_table_report(eval_run, isolated, monkeypatch):
    pytest.importorskip("wandb", reason="wandb not installed (pip install 'lmgauge-exporters[wandb]')")
    e = eval_run
    before = own_files(e["dir"])
    # a key on the command line must not reach W&B (it records argv unless told not to)
    monkeypatch.setattr(sys, "argv", ["lmgauge", "eval", "--api-key", LIVE_KEY])
    print("terminal line TERMINAL-LEAK that W&B must not capture")
    lines = run_exporters(["wandb"], str(e["dir"]),
                          {"wandb_mode": "offline", "wandb_project": "proj-x", "wandb_run_name": "first"})
    assert len(lines) == 1 and lines[0].startswith("export wandb: offline: project proj-x, run first (1 step, "
                                                   "samples table (24 rows), report.html artifact) in "), lines
    wb = read_wandb_run(e["dir"])
    assert str(wb["dir"]) in lines[0] and f"wandb sync {wb['dir']}" in lines[0]
    assert (wb["run"].project, wb["run"].display_name, wb["run"].host) == ("proj-x", "first", "")
    assert wb["config"]["api_key"] == "***" and wb["config"]["max_tokens"] == 32768
    assert wb["config"]["lmgauge"]["model"] == "DeepSeek-R1-Distill-Qwen-1.5B"
    assert wb["config"]["lmgauge"]["kind"] == "eval"
    (step0,) = wb["history"].values()
    for r in e["report"]["results"]:
        for field, suffix in (("score", ""), ("ci_low", "/ci_low"), ("ci_high", "/ci_high")):
            assert step0[score_key(r) + suffix] == pytest.approx(r[field]), (r, field)
    assert step0["math_500/health/errors"] == 1
    check_sample_table(wandb_table(wb, step0["samples"]), e["records"])
    (kind, files), = [a for a in wb["artifacts"].values() if a[0] == "lmgauge-report"]
    assert files == {"report.html": (e["dir"] / "report.html").read_bytes()}
    # nothing secret, nothing of the command line or terminal, anywhere W&B wrote
    raw = all_bytes(e["dir"] / "wandb", isolated)
    for leak in (b"SECRET", LIVE_KEY.encode(), b"TERMINAL-LEAK", b"user:pw@"):
        assert leak not in raw, leak
    assert sys.argv[-1] == LIVE_KEY
    assert own_files(e["dir"]) == before


def test_wandb_offline_perf_one_step_per_level(perf_run, tmp_path):
    pytest.importorskip("wandb", reason="wandb not installed")
    p = perf_run
    before = own_files(p["dir"])
    line = WandbExporter().export(str(p["dir"]), {"wandb_mode": "offline", "export_path": str(tmp_path / "out")})
    assert line.startswith("offline: project lmgauge-perf, run gpt-oss-20b-perf-run (4 steps, report.html artifact)")
    wb = read_wandb_run(tmp_path / "out")
    levels = p["summary"]["runs"]
    assert sorted(wb["history"]) == [0, 1, 2, 3]
    for i, lv in enumerate(levels):
        step = wb["history"][i]
        assert step["concurrency"] == lv["concurrency"]
        assert step["rps"] == pytest.approx(lv["request_throughput"])
        assert step["output_tok_s"] == pytest.approx(lv["output_token_throughput"])
        assert step["success_rate"] == pytest.approx(lv["succeeded"] / lv["requests"])
        for metric in ("ttft", "tpot", "itl", "latency"):
            for pct in PCTS:
                assert step[f"{metric}/{pct}"] == pytest.approx(lv[f"{metric}_s"][pct])
    assert wb["history"][3]["success_rate"] < 1
    assert wb["config"]["lmgauge"]["kind"] == "perf" and wb["config"]["lmgauge"]["url"].count("***") == 1
    assert b"SECRET" not in all_bytes(tmp_path / "out") and b"user:pw@" not in all_bytes(tmp_path / "out")
    assert own_files(p["dir"]) == before and not (p["dir"] / "wandb").exists()


def test_wandb_table_over_the_run_table_limit_goes_into_the_artifact(eval_run, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="wandb not installed")
    monkeypatch.setattr(wandb.Table, "MAX_ROWS", 10)  # W&B's limit for tables logged to a run
    lines = run_exporters(["wandb"], str(eval_run["dir"]), {"wandb_mode": "offline"})
    assert "samples table (24 rows, in the artifact)" in lines[0], lines
    wb = read_wandb_run(eval_run["dir"])
    assert "samples" not in wb["history"][0]
    (kind, files), = wb["artifacts"].values()
    assert kind == "lmgauge-report" and sorted(files) == ["report.html", "samples.table.json"]
    check_sample_table(json.loads(files["samples.table.json"]), eval_run["records"])


def test_wandb_online_without_a_key_is_one_line(eval_run):
    pytest.importorskip("wandb", reason="wandb not installed")
    lines = run_exporters(["wandb"], str(eval_run["dir"]), {"wandb_mode": "online"})
    assert len(lines) == 1 and lines[0].startswith("lmgauge: warning: export wandb failed: W&B failed (online mode):")
    assert "API key" in lines[0] and "WANDB_API_KEY" in lines[0] and "--wandb-mode offline" in lines[0]


def test_wandb_bad_option_values_are_one_line(eval_run):
    lines = run_exporters(["wandb"], str(eval_run["dir"]), {"wandb_mode": "cloud"})
    assert lines == ["lmgauge: warning: export wandb failed: unknown W&B mode 'cloud' (use --wandb-mode "
                     f"online|offline); the run's own files are unchanged in {eval_run['dir']}"]
    pytest.importorskip("wandb", reason="wandb not installed")
    lines = run_exporters(["wandb"], str(eval_run["dir"]), {"wandb_mode": "offline", "wandb_project": "team/evals"})
    assert len(lines) == 1 and lines[0].startswith("lmgauge: warning: export wandb failed: W&B failed (offline mode): "
                                                   "UsageError: Invalid project name 'team/evals'"), lines
    assert "(check --wandb-project, --wandb-run-name and --wandb-dir)" in lines[0]


# --------------------------------------------------------------------------------------
# MLflow
def mlflow_client(uri: str, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed (pip install 'lmgauge-exporters[mlflow]')")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when allowed
    return MlflowClient(tracking_uri=uri)


def one_run(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    (run,) = client.search_runs([exp.experiment_id])
    return run


def test_mlflow_file_store_eval_metrics_params_table_report(eval_run, monkeypatch, tmp_path):
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed")
    e = eval_run
    before = own_files(e["dir"])
    lines = run_exporters(["mlflow"], str(e["dir"]), {"mlflow_experiment": "r1-distill", "mlflow_run_name": "try 1"})
    assert len(lines) == 1 and lines[0].startswith(f"export mlflow: {e['dir'] / 'mlruns'}: experiment r1-distill, "
                                                   "run try 1 ("), lines
    assert "1 step, 18 params, samples table (24 rows), report.html" in lines[0]
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # the exporter put it back
    client = mlflow_client((e["dir"] / "mlruns").as_uri(), monkeypatch)
    run = one_run(client, "r1-distill")
    assert run.info.status == "FINISHED" and run.info.run_name == "try 1"
    keys = _unique_keys([score_key(r) + s for r in e["report"]["results"] for s in ("", "/ci_low", "/ci_high")])
    for r in e["report"]["results"]:
        for field, suffix in (("score", ""), ("ci_low", "/ci_low"), ("ci_high", "/ci_high")):
            history = client.get_metric_history(run.info.run_id, keys[score_key(r) + suffix])
            assert [(m.step, m.value) for m in history] == [(0, pytest.approx(r[field]))], (r, field)
    assert run.data.metrics["math_500/AveragePass_at_1_ci_low"] == pytest.approx(
        [r for r in e["report"]["results"] if r["subset"] == "OVERALL" and r["benchmark"] == "math_500"][0]["ci_low"])
    assert run.data.metrics["math_500/health/errors"] == 1
    params = run.data.params
    assert params["api_key"] == "***" and params["hf_token"] == "***"
    assert params["model"] == "DeepSeek-R1-Distill-Qwen-1.5B" and params["max_tokens"] == "32768"
    assert json.loads(params["benchmark"]) == ["math_500", "gpqa_diamond"]
    tags = run.data.tags
    assert tags["lmgauge.kind"] == "eval" and tags["lmgauge.run_folder"] == "eval-run"
    assert json.loads(tags["mlflow.loggedArtifacts"]) == [{"path": "samples.json", "type": "table"}]
    assert not any(k.startswith(("mlflow.user", "mlflow.source")) for k in tags)
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["config.json", "report.html",
                                                                             "samples.json"]
    got = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
    assert (got / "report.html").read_bytes() == (e["dir"] / "report.html").read_bytes()
    config = json.loads((got / "config.json").read_text())
    assert config["api_key"] == "***" and config["headers"] == ["Authorization: ***", "X-Trace: 1"]
    check_sample_table(json.loads((got / "samples.json").read_text()), e["records"])
    assert b"SECRET" not in all_bytes(e["dir"] / "mlruns")
    assert own_files(e["dir"]) == before


def test_mlflow_perf_one_step_per_level_into_export_path(perf_run, monkeypatch, tmp_path):
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed")
    p = perf_run
    out = tmp_path / "tracking"
    line = MlflowExporter().export(str(p["dir"]), {"export_path": str(out)})
    assert line.startswith(f"{out / 'mlruns'}: experiment lmgauge-perf, run gpt-oss-20b-perf-run ("), line
    assert "4 steps" in line and "samples table" not in line
    client = mlflow_client((out / "mlruns").as_uri(), monkeypatch)
    run = one_run(client, "lmgauge-perf")
    levels = p["summary"]["runs"]

    def series(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))

    assert series("concurrency") == [(i, lv["concurrency"]) for i, lv in enumerate(levels)]
    assert series("rps") == [(i, pytest.approx(lv["request_throughput"])) for i, lv in enumerate(levels)]
    assert series("total_tok_s") == [(i, pytest.approx(lv["total_token_throughput"])) for i, lv in enumerate(levels)]
    for metric in ("ttft", "tpot", "itl", "latency"):
        for pct in PCTS:
            assert series(f"{metric}/{pct}") == [(i, pytest.approx(lv[f"{metric}_s"][pct]))
                                                 for i, lv in enumerate(levels)]
    assert series("success_rate")[-1][1] == pytest.approx(levels[-1]["succeeded"] / levels[-1]["requests"])
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["config.json", "report.html"]
    assert run.data.params["api_key"] == "***"
    raw = all_bytes(out)
    assert b"SECRET" not in raw and b"user:pw@" not in raw
    assert not (p["dir"] / "mlruns").exists()


def test_mlflow_names_are_valid_and_never_clash():
    assert mlflow_key("math_500/Level 3/AveragePass@1") == "math_500/Level 3/AveragePass_at_1"
    assert mlflow_key("b/../x:y?/maj@5") == "b/_/x_y_/maj_at_5"
    assert mlflow_key("/a//b/") == "_/a/_/b/_"
    keys = _unique_keys(["m/pass@1", "m/pass@1/ci_low", "m/pass_at_1", "m/x?", "m/x!"])
    assert keys == {"m/pass@1": "m/pass_at_1", "m/pass@1/ci_low": "m/pass_at_1_ci_low", "m/pass_at_1": "m/pass_at_1_2",
                    "m/x?": "m/x_", "m/x!": "m/x__2"}


def test_mlflow_deleted_experiment_and_bad_uri_are_one_line(eval_run, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed")
    store = eval_run["dir"].parent / "store"
    client = mlflow_client(store.resolve().as_uri(), monkeypatch)
    client.delete_experiment(client.create_experiment("gone"))
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    lines = run_exporters(["mlflow"], str(eval_run["dir"]), {"mlflow_tracking_uri": str(store),
                                                            "mlflow_experiment": "gone"})
    assert lines == ["lmgauge: warning: export mlflow failed: MLflow experiment 'gone' is deleted (restore it "
                     "(`mlflow experiments restore`) or choose another --mlflow-experiment); the run's own files "
                     f"are unchanged in {eval_run['dir']}"]
    lines = run_exporters(["mlflow"], str(eval_run["dir"]), {"mlflow_tracking_uri": "ftp://user:pw@host/x"})
    assert len(lines) == 1 and lines[0].startswith("lmgauge: warning: export mlflow failed: MLflow failed "
                                                   "(ftp://***@host/x): "), lines
    assert "unsupported URI" in lines[0] and "pw@" not in lines[0]


# --------------------------------------------------------------------------------------
# both
@pytest.mark.parametrize("name,module,package", [("wandb", "wandb", "wandb"), ("mlflow", "mlflow", "mlflow-skinny")])
def test_library_missing_is_one_line(eval_run, monkeypatch, name, module, package):
    for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")] + [module]:
        monkeypatch.setitem(sys.modules, loaded, None)  # import -> ImportError
    lines = run_exporters(["json", name], str(eval_run["dir"]), {"wandb_mode": "offline"})
    assert lines[0].startswith("export json: wrote")
    assert lines[1] == (f"lmgauge: warning: export {name} failed: the {name} exporter needs the {package} package, "
                        f"which is not installed (pip install 'lmgauge-exporters[{name}]'); the run's own files "
                        f"are unchanged in {eval_run['dir']}")


def test_help_does_not_import_the_tracker_libraries():
    code = ("import sys, lmgauge.cli\n"
            "for args in (['--help'], ['export', '--help'], ['eval', '--help']):\n"
            "    try:\n        lmgauge.cli.main(args)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('wandb', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--wandb-project" in out and "--mlflow-tracking-uri" in out
    assert out.strip().splitlines()[-1] == "[]"


def _cli_has_exporter_options() -> bool:
    return "--wandb-mode" in run_cli("export", "--help").stdout


needs_option_plumbing = pytest.mark.skipif(not _cli_has_exporter_options(),
                                           reason="lmgauge export does not take exporter-declared options yet")


@needs_option_plumbing
def test_cli_export_both_with_options(eval_run, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb not installed")
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed")
    out = tmp_path / "trackers"
    proc = run_cli("export", str(eval_run["dir"]), "--to", "wandb,mlflow", "--export-path", str(out),
                   "--wandb-mode", "offline", "--wandb-project", "cli-proj", "--wandb-run-name", "cli-run",
                   "--mlflow-experiment", "cli-exp", "--mlflow-run-name", "cli-run", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("export wandb: offline: project cli-proj, run cli-run (1 step, samples table (24 rows)")
    assert lines[1].startswith(f"export mlflow: {out / 'mlruns'}: experiment cli-exp, run cli-run (")
    wb = read_wandb_run(out)
    overall = [r for r in eval_run["report"]["results"] if r["subset"] == "OVERALL"]
    assert [wb["history"][0][score_key(r)] for r in overall] == [pytest.approx(r["score"]) for r in overall]
    run = one_run(mlflow_client((out / "mlruns").as_uri(), monkeypatch), "cli-exp")
    assert [run.data.metrics[mlflow_key(score_key(r))] for r in overall] == [pytest.approx(r["score"]) for r in overall]
    # --wandb-dir wins over --export-path for W&B
    proc = run_cli("export", str(eval_run["dir"]), "--to", "wandb", "--wandb-mode", "offline",
                   "--wandb-dir", str(tmp_path / "wb.dir"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert read_wandb_run(tmp_path / "wb.dir")["history"][0]["samples"]["nrows"] == 24


@needs_option_plumbing
@pytest.mark.parametrize("args,needles", [
    (["--wandb-mode", "cloud"], ["--wandb-mode", "cloud"]),
    (["--wandb-project"], ["--wandb-project", "argument"]),
    (["--mlflow-tracking-uri"], ["--mlflow-tracking-uri", "argument"]),
])
def test_cli_bad_or_missing_option_value_is_one_line(eval_run, args, needles):
    proc = run_cli("export", str(eval_run["dir"]), "--to", "wandb,mlflow", *args)
    assert_one_line_error(proc, *needles)
    assert not (eval_run["dir"] / "wandb").exists() and not (eval_run["dir"] / "mlruns").exists()


@needs_option_plumbing
def test_eval_exports_to_both_and_the_api_key_goes_nowhere(eval_server, tmp_path, monkeypatch):
    """A real eval (a local OpenAI-compatible server, an API key on the command line) exported
    at the end with --export wandb,mlflow: both read back equal to report.json; the key appears
    in no file anywhere (run folder, W&B and MLflow files, W&B's staging area)."""
    pytest.importorskip("wandb", reason="wandb not installed")
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed")
    from lmgauge.plugins import PluginManager

    samples = PluginManager(only=["math_500"]).get("benchmarks", "math_500").load()[:4]
    answers = {s.prompt: [f"So \\boxed{{{s.gold}}}", "Hmm \\boxed{-1}"] for s in samples}
    server = eval_server({"model": "tiny-model", "answers": answers})
    out = tmp_path / "run"
    proc = run_cli("eval", "--backend", "openai", "--base-url", server.base_url, "--model", "tiny-model",
                   "--api-key", LIVE_KEY, "--benchmark", "math_500", "--limit", "4", "--repeats", "2",
                   "--seed", "0", "--output", str(out), "--no-progress", "--export", "wandb,mlflow",
                   "--wandb-mode", "offline", "--mlflow-experiment", "eval-exp",
                   env={"LMGAUGE_PLUGINS": "math_500,openai,wandb,mlflow"}, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "export wandb: offline: project lmgauge-eval" in proc.stdout + proc.stderr
    assert "export mlflow: " in proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert server.log() and all(entry["auth"] for entry in server.log())  # the key was used
    wb = read_wandb_run(out)
    client = mlflow_client((out / "mlruns").as_uri(), monkeypatch)
    run = one_run(client, "eval-exp")
    for r in report["results"]:
        assert wb["history"][0][score_key(r)] == pytest.approx(r["score"])
        assert wb["history"][0][score_key(r) + "/ci_low"] == pytest.approx(r["ci_low"])
        assert run.data.metrics[mlflow_key(score_key(r))] == pytest.approx(r["score"])
    assert wb["history"][0]["samples"]["nrows"] == 8
    overall = [r for r in report["results"] if r["subset"] == "OVERALL"][0]
    assert overall["score"] == pytest.approx(0.5)
    assert "report.html" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert LIVE_KEY.encode() not in all_bytes(out, tmp_path / "home")


@needs_option_plumbing
def test_perf_exports_to_both_one_step_per_level(tmp_path, monkeypatch):
    """A real perf sweep (tests/perf_server.py, two concurrency levels, an API key) exported at
    the end with --export wandb,mlflow: one step per level in both, equal to summary.json."""
    pytest.importorskip("wandb", reason="wandb not installed")
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed")
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "perf_server.py"), "--ttft", "0.01", "--itl",
                               "0.002", "--tokens", "8"], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1/chat/completions"
        out = tmp_path / "perf"
        proc = run_cli("perf", "--url", url, "--model", "perf-model", "--api-key", LIVE_KEY, "--concurrency", "1",
                       "2", "--number", "4", "6", "--output", str(out), "--export", "wandb,mlflow",
                       "--wandb-mode", "offline", "--mlflow-run-name", "sweep",
                       env={"LMGAUGE_PLUGINS": "openai,openqa,wandb,mlflow"}, timeout=240)
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "export wandb: offline: project lmgauge-perf" in proc.stdout + proc.stderr
    levels = json.loads((out / "summary.json").read_text())["runs"]
    assert [lv["concurrency"] for lv in levels] == [1, 2]
    wb = read_wandb_run(out)
    client = mlflow_client((out / "mlruns").as_uri(), monkeypatch)
    run = one_run(client, "lmgauge-perf")
    assert run.info.run_name == "sweep"
    for key, field in (("rps", "request_throughput"), ("ttft/p99", None), ("latency/mean", None)):
        want = [lv[field] if field else lv[key.split("/")[0] + "_s"][key.split("/")[1]] for lv in levels]
        assert [wb["history"][i][key] for i in range(len(levels))] == pytest.approx(want)
        got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert got == [(i, pytest.approx(v)) for i, v in enumerate(want)]
    assert [wb["history"][i]["success_rate"] for i in range(len(levels))] == [1.0, 1.0]
    assert LIVE_KEY.encode() not in all_bytes(out, tmp_path / "home")
