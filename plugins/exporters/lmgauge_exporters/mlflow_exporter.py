"""``--export mlflow`` (extra ``lmgauge-exporters[mlflow]``, i.e. ``mlflow-skinny``): one MLflow
run per lmgauge run.

- eval: every score row as a metric at step 0, ``<benchmark>/<metric>`` (OVERALL) or
  ``<benchmark>/<subset>/<metric>`` with ``..._ci_low``/``_ci_high`` and
  ``<benchmark>/health/...`` (the swanlab exporter's keys, made valid MLflow names: characters
  MLflow refuses become ``_``, ``@`` becomes ``_at_``, and the CI keys end in ``_ci_low``
  rather than ``/ci_low``: ``math_500/AveragePass_at_1_ci_low``), plus the per-sample table
  artifact ``samples.json``;
- perf: one step per concurrency level (or request rate), in sweep order: ``concurrency`` or
  ``rate``, ``rps``, ``output_tok_s``, ``total_tok_s``, ``success_rate`` and
  ``ttft|tpot|itl|latency/{mean,p50,p90,p99}``;
- params: the run config with secrets removed, flattened (``backend_options.x``); the whole of it
  as the artifact ``config.json``; tags ``lmgauge.{kind, model, backend, run_folder}``;
- ``DIR/report.html`` as the artifact ``report.html``.

Where (``--mlflow-tracking-uri``, else ``--export-path``, else ``MLFLOW_TRACKING_URI``, else
``DIR/mlruns``): a local folder or ``file:`` URI is MLflow's file store (MLflow 3 keeps it in
maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE=true``, which this exporter sets while it
writes); ``http(s)://`` is a tracking server (credentials from MLflow's own variables,
``MLFLOW_TRACKING_TOKEN`` / ``_USERNAME`` / ``_PASSWORD``); ``sqlite:///...`` and other database
URIs need SQLAlchemy and Alembic (the full ``mlflow`` package brings them). Runs are written
through ``MlflowClient``, which records nothing of the machine (no user, source file, git commit
or system metrics).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import click
import orjson

from lmgauge.plugin import Exporter, LmgaugeError, export_target, hookimpl, load_run, redact

from .tracking import SAMPLE_COLUMNS, default_run_name, eval_metrics, perf_steps, run_config, sample_rows

MAX_KEY = 250  # MLflow's limit on metric, param and tag names
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def mlflow_key(name: str) -> str:
    """A metric/param name MLflow accepts: ``/``-separated parts of letters, digits, ``_ - . ``
    (``@`` → ``_at_``, anything else → ``_``), no empty, ``.`` or ``..`` part."""
    parts = []
    for part in str(name).split("/"):
        part = re.sub(r"[^\w.\- ]", "_", part.replace("@", "_at_")).strip()
        parts.append("_" if part in ("", ".", "..") else part)
    return "/".join(parts)[:MAX_KEY]


def _unique_keys(names: list[str]) -> dict[str, str]:
    """lmgauge name → MLflow key. MLflow's file store keeps a metric in a file named by its
    key, so a key that is another's folder (``x`` and ``x/ci_low``) joins with ``_`` there
    (``x_ci_low``); two names that clean up alike get ``_2``, ``_3``..."""
    cleaned = {name: mlflow_key(name) for name in names}
    clean_set = set(cleaned.values())
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name, clean in cleaned.items():
        parts = clean.split("/")
        base = parts[0]
        for i in range(1, len(parts)):
            base += ("_" if "/".join(parts[:i]) in clean_set else "/") + parts[i]
        key, n = base[:MAX_KEY], 1
        while key in taken:
            n += 1
            key = f"{base[:MAX_KEY - 4]}_{n}"
        taken.add(key)
        out[name] = key
    return out


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` → ``{"a.b": "1", "c": "[1,2]"}``; values cut to
    MLflow's 6000 characters."""
    out: dict[str, str] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat_params(v, f"{key}."))
            continue
        text = v if isinstance(v, str) else orjson.dumps(v, default=str).decode("utf-8")
        out[key] = text[:MAX_PARAM_VALUE]
    return out


def tracking_uri(run_dir: str, options: dict[str, Any]) -> tuple[str, Path | None]:
    """(the tracking URI, the local folder when it is a file store)."""
    raw = options.get("mlflow_tracking_uri")
    if not raw and not options.get("export_path") and os.environ.get("MLFLOW_TRACKING_URI"):
        raw = os.environ["MLFLOW_TRACKING_URI"]
    if not raw:
        folder = export_target(run_dir, options, suffixes=(), default_file="mlruns", file_in_folder="mlruns")
        return folder.resolve().as_uri(), folder
    raw = str(raw)
    if raw.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return raw, Path(unquote(urlparse(raw).path))
    if _REMOTE.match(raw) or raw == "databricks":
        return raw, None
    folder = Path(raw).expanduser()
    return folder.resolve().as_uri(), folder


@contextlib.contextmanager
def _file_store_allowed(local: bool) -> Iterator[None]:
    """MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE`` is true: allow it
    while we write, then put the variable back as it was."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    if local:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if local:
            if old is None:
                os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
            else:
                os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def _experiment_id(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name)
        except MlflowException:  # created meanwhile by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise LmgaugeError(f"MLflow experiment {name!r} is deleted",
                           "restore it (`mlflow experiments restore`) or choose another --mlflow-experiment")
    return exp.experiment_id


def _log_artifacts(client: Any, run_id: str, config: dict[str, Any], rows: list[list[Any]], report: Path) -> None:
    """``config.json``, the per-sample table ``samples.json`` and ``report.html``. The table is
    in the format of ``MlflowClient.log_table`` (pandas' "split" JSON) and registered as that
    does, written without needing pandas; ``mlflow.load_table`` reads it back."""
    from mlflow.entities import RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

    client.log_text(run_id, orjson.dumps(config, default=str, option=orjson.OPT_INDENT_2).decode("utf-8"),
                    "config.json")
    if rows:
        with tempfile.TemporaryDirectory(prefix="lmgauge-mlflow-") as tmp:
            path = Path(tmp) / "samples.json"
            path.write_bytes(orjson.dumps({"columns": list(SAMPLE_COLUMNS), "data": rows},
                                          option=orjson.OPT_SERIALIZE_NUMPY))
            client.log_artifact(run_id, str(path))
        listed = orjson.dumps([{"path": "samples.json", "type": "table"}]).decode("utf-8")
        client.log_batch(run_id, tags=[RunTag(MLFLOW_LOGGED_ARTIFACTS, listed)])
    if report.is_file():
        client.log_artifact(run_id, str(report))


class MlflowExporter(Exporter):
    name = "mlflow"
    description = "MLflow run: scores, per-sample table, perf levels as steps, params, report (file store or server)"
    options = [
        click.Option(["--mlflow-tracking-uri", "mlflow_tracking_uri"], default=None, metavar="URI",
                     help="MLflow tracking URI: a folder or file: URI (file store), http(s)://server, databricks, "
                          "sqlite:///x.db. Default: --export-path, else MLFLOW_TRACKING_URI, else DIR/mlruns."),
        click.Option(["--mlflow-experiment", "mlflow_experiment"], default=None, metavar="NAME",
                     help="MLflow experiment, created if missing (default: MLFLOW_EXPERIMENT_NAME, else "
                          "lmgauge-eval / lmgauge-perf)."),
        click.Option(["--mlflow-run-name", "mlflow_run_name"], default=None, metavar="NAME",
                     help="MLflow run name (default: <model>-<run folder>)."),
    ]

    def export(self, run_dir: str, options: dict[str, Any]) -> str:
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise LmgaugeError("the mlflow exporter needs the mlflow-skinny package, which is not installed",
                               "pip install 'lmgauge-exporters[mlflow]'") from None
        run = load_run(run_dir)
        uri, local = tracking_uri(run_dir, options)
        shown_uri = redact(uri)
        experiment = (options.get("mlflow_experiment") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                      or f"lmgauge-{run.kind}")
        run_name = options.get("mlflow_run_name") or default_run_name(run)
        report = Path(run_dir) / "report.html"
        steps = [eval_metrics(run)] if run.kind == "eval" else perf_steps(run)
        keys = _unique_keys(sorted({k for step in steps for k in step}))
        now = int(time.time() * 1000)
        metrics = [Metric(keys[k], v, now, i) for i, step in enumerate(steps) for k, v in step.items()]
        config = run_config(run)
        params = flat_params(config)
        pkeys = _unique_keys(list(params))
        rows = sample_rows(run) if run.kind == "eval" else []
        tags = {"lmgauge.kind": run.kind, "lmgauge.model": run.model, "lmgauge.backend": run.backend,
                "lmgauge.run_folder": run.name, "mlflow.note.content": f"lmgauge {run.kind} run {run.name}"}
        try:
            with _file_store_allowed(local is not None), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                if local is not None:
                    local.mkdir(parents=True, exist_ok=True)
                client = MlflowClient(tracking_uri=uri)
                run_id = client.create_run(_experiment_id(client, experiment), run_name=run_name,
                                           tags=tags).info.run_id
                status = "FAILED"
                try:
                    client.log_batch(run_id, metrics=metrics, params=[Param(pkeys[k], v) for k, v in params.items()])
                    _log_artifacts(client, run_id, config, rows, report)
                    status = "FINISHED"
                finally:
                    client.set_terminated(run_id, status)
        except (LmgaugeError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow errors become one line
            text = redact(" ".join(str(exc).split()))[:300] or exc.__class__.__name__
            hint = ("check --export-path / --mlflow-tracking-uri is a writable folder" if local is not None else
                    "check --mlflow-tracking-uri, the server and its credentials (MLFLOW_TRACKING_TOKEN, ...)")
            raise LmgaugeError(f"MLflow failed ({shown_uri}): {exc.__class__.__name__}: {text}", hint) from None
        what = [f"{len(steps)} step{'s' if len(steps) != 1 else ''}", f"{len(params)} params"]
        if rows:
            what.append(f"samples table ({len(rows)} rows)")
        if report.is_file():
            what.append("report.html")
        where = f"experiment {experiment}, run {run_name} ({run_id}): {', '.join(what)}"
        if local is None:
            return f"{shown_uri}: {where}"
        return f"{local}: {where} (view: MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {uri})"


@hookimpl
def register_exporters(register):
    register(MlflowExporter)
