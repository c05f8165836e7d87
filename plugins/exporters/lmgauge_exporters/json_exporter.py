"""``--export json``: one JSON file with the run's report, config (secrets removed) and every
per-sample (eval) or per-request (perf) record. Schema: docs/outputs.md ("lmgauge-export" v1)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from lmgauge.plugin import Exporter, atomic_write, export_target, hookimpl, lmgauge_version, load_run

from . import now_iso

SCHEMA = "lmgauge-export"
SCHEMA_VERSION = 1


def build_document(run_dir: str) -> dict[str, Any]:
    """The export document of one run folder (what the file holds)."""
    run = load_run(run_dir)
    report = run.report if run.report is not None else run.summary
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "exported_at": now_iso(),
        "lmgauge_version": lmgauge_version,
        "run": {"kind": run.kind, "name": run.name, "dir": str(Path(run_dir).resolve()), "model": run.model,
                "backend": run.backend, "url": run.url, "created": run.created},
        "config": run.config,
        "report": report.to_dict() if report is not None else {},
        "samples": [s.to_dict() for s in run.samples()],
        "requests": [r.to_dict() for r in run.requests()],
    }


class JsonExporter(Exporter):
    name = "json"
    description = "one JSON file: report, redacted config, per-sample/per-request records"

    def export(self, run_dir: str, options: dict[str, Any]) -> str:
        target = export_target(run_dir, options, suffixes=(".json",), default_file="export.json",
                               file_in_folder=f"{Path(run_dir).resolve().name}.json", key="json_path")
        doc = build_document(run_dir)
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        atomic_write(target, data)
        n = len(doc["samples"]) or len(doc["requests"])
        what = "samples" if doc["run"]["kind"] == "eval" else "requests"
        return f"wrote {target} ({n} {what})"


@hookimpl
def register_exporters(register):
    register(JsonExporter)
