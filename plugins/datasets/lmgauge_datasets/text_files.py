"""``--dataset line_by_line`` (one prompt per non-empty line of a text file) and
``--dataset custom`` (JSONL rows with ``prompt`` text or chat ``messages``)."""
from __future__ import annotations

from pathlib import Path

from lmgauge.plugin import ConfigError, DataError, hookimpl

from .base import TextDataset, jsonl_rows


def _path(settings, name: str) -> Path:
    path = settings.dataset_path
    if not path:
        raise ConfigError(f"--dataset {name} needs --dataset-path FILE")
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"--dataset-path {path}: no such file", "check the path")
    return p


class LineByLine(TextDataset):
    name = "line_by_line"
    description = "one prompt per line of --dataset-path"

    def prompts(self):
        lines = [l.strip() for l in _path(self.settings, self.name).read_text(encoding="utf-8-sig").splitlines()]
        lines = [l for l in lines if l]
        if not lines:
            raise DataError(f"--dataset-path {self.settings.dataset_path} has no non-empty lines")
        return [(l, None) for l in lines]


class Custom(TextDataset):
    name = "custom"
    description = "JSONL rows with `prompt` or `messages` (--dataset-path)"

    def prompts(self):
        p = _path(self.settings, self.name)
        out = []
        for n, row in jsonl_rows(p, str(p), "one JSON object per line"):
            if isinstance(row, dict) and isinstance(row.get("messages"), list):
                out.append((None, row["messages"]))
            elif isinstance(row, dict) and isinstance(row.get("prompt"), str):
                out.append((row["prompt"], None))
            else:
                raise DataError(f"{p}: line {n} has neither `prompt` (text) nor `messages` (list)")
        if not out:
            raise DataError(f"{p}: no rows")
        return out


@hookimpl
def register_perf_datasets(register):
    register(LineByLine)
    register(Custom)
