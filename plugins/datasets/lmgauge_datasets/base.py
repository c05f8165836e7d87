"""What every perf dataset shares: turning prompt text into requests with the perf settings.

Options (a dict from ``lmgauge perf``): ``dataset_path``, ``tokenizer`` (a
``lmgauge.tokenizers.Tokenizer``), ``min_prompt_length``/``max_prompt_length``,
``prefix_length``, ``min_tokens``/``max_tokens``, ``extra_args`` (dict), ``stream``, ``seed``,
``api``.
"""
from __future__ import annotations

from typing import Any, Iterator

from lmgauge.interfaces import PerfDataset
from lmgauge.perf.requests import make_request
from lmgauge.types import GenerationRequest


class TextDataset(PerfDataset):
    """A dataset that has a list of prompts and cycles through them."""

    def prompts(self) -> list[tuple[str | None, list[dict[str, str]] | None]]:
        raise NotImplementedError

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        items = self.prompts()
        for i in range(count):
            text, messages = items[i % len(items)]
            yield make_request(text, self.options, i, messages)
