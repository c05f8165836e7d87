"""``--dataset openqa``: real open questions.

By default a small set of open questions written for lmgauge and bundled
(``data/openqa.jsonl``). ``--dataset-path FILE`` reads the HC3 ``open_qa.jsonl`` file (or any
JSONL with a ``question`` field); ``--dataset-path hc3`` downloads it from the hub
(Hello-SimpleAI/HC3), which needs network.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from lmgauge.plugin import DataError, hookimpl

from .base import TextDataset, jsonl_rows


def read_questions(path: str) -> list[str]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"--dataset-path {path}: no such file", "pass the HC3 open_qa.jsonl file")
    out = []
    for _, row in jsonl_rows(p, path, "openqa reads JSONL with a `question` field"):
        q = row.get("question") or row.get("prompt") if isinstance(row, dict) else None
        if q:
            out.append(str(q))
    if not out:
        raise DataError(f"{path}: no `question` fields found", "openqa reads JSONL with a `question` field")
    return out


class OpenQA(TextDataset):
    name = "openqa"
    default = True
    description = "open questions (bundled set, or the HC3 open_qa file via --dataset-path)"

    def prompts(self):
        path = self.settings.dataset_path
        if path == "hc3":
            try:
                from huggingface_hub import hf_hub_download

                path = hf_hub_download("Hello-SimpleAI/HC3", "open_qa.jsonl", repo_type="dataset")
            except Exception as exc:  # noqa: BLE001
                raise DataError(f"cannot download HC3 open_qa from the hub ({exc.__class__.__name__})",
                                "pass a local copy with --dataset-path open_qa.jsonl") from None
        if not path:
            path = str(resources.files("lmgauge_datasets") / "data" / "openqa.jsonl")
        return [(q, None) for q in read_questions(str(path))]


@hookimpl
def register_perf_datasets(register):
    register(OpenQA)
