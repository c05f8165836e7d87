"""What every perf dataset shares: turning prompt text into requests with the run's settings.

A dataset gets its own option values in ``self.options``, the run's shared request settings in
``self.settings`` (``dataset_path``, ``max_tokens``, ``min_tokens``, ``seed``, ``api``, ...) and
the run's tokenizer in ``self.tokenizer`` (see ``lmgauge.interfaces.PerfDataset``).
"""
from __future__ import annotations

import abc
import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from lmgauge.plugin import ConfigError, DataError, GenerationRequest, PerfDataset, make_request


def bundled(name: str) -> str:
    """Path of a data file shipped with lmgauge-datasets (``lmgauge_datasets/data/NAME``)."""
    return str(resources.files("lmgauge_datasets") / "data" / name)


def jsonl_rows(path: Path, name: str, hint: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of a JSONL file; a line that is not
    JSON is a DataError naming ``name`` (how the user wrote the path) and the line."""
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{name}: line {n} is not valid JSON", hint) from None


class TextDataset(PerfDataset):
    """A dataset that has a list of prompts and cycles through them."""

    @abc.abstractmethod
    def prompts(self) -> list[tuple[str | None, list[dict[str, str]] | None]]:
        """(text, chat messages or None) of every prompt."""

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        items = self.prompts()
        for i in range(count):
            text, messages = items[i % len(items)]
            yield make_request(text, self.settings, i, messages)


def need_tokenizer(dataset: PerfDataset):
    """The run's tokenizer, which a dataset of exact token lengths cannot do without (perf
    always gives one to datasets with ``needs_tokenizer``; this is for direct use)."""
    if dataset.tokenizer is None:
        raise ConfigError(f"--dataset {dataset.name} needs a tokenizer", "pass --tokenizer cl100k_base or a tokenizer path")
    return dataset.tokenizer
