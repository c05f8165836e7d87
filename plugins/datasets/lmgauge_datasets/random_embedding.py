"""``--dataset random_embedding``: texts to embed, of exact token lengths, for /v1/embeddings.

Each request carries ``--embedding-batch N`` texts (default 1), each of L tokens with L drawn
uniformly in ``[--min-prompt-length, --max-prompt-length]`` after ``--prefix-length`` shared
tokens: the random dataset's options, vocabulary and exactness (random_prompts.py). Lengths
count the text under the run's tokenizer (``--tokenizer``, default cl100k_base). Other datasets
work against an embeddings endpoint too, one text per request.
"""
from __future__ import annotations

import random
from typing import Any, Iterator

import click

from lmgauge.plugin import ConfigError, GenerationRequest, PerfDataset, hookimpl

from .base import need_tokenizer
from .random_prompts import PROMPT_LENGTH_OPTIONS, exact_text, word_tokens


def prompt_lengths(options: dict[str, Any], dataset: str) -> tuple[int, int]:
    """``[--min-prompt-length, --max-prompt-length]``, both required, in order."""
    lo = int(options.get("min_prompt_length") or 0)
    hi = int(options.get("max_prompt_length") or 0)
    if lo <= 0 or hi <= 0:
        raise ConfigError(f"--dataset {dataset} needs --min-prompt-length and --max-prompt-length (tokens)",
                          "e.g. --min-prompt-length 512 --max-prompt-length 512")
    if lo > hi:
        raise ConfigError(f"--min-prompt-length {lo} is larger than --max-prompt-length {hi}")
    return lo, hi


def require_api(dataset: str, api: str, allowed: tuple[str, ...], hint: str) -> None:
    """One line when the run's endpoint kind cannot take this dataset's requests."""
    if api not in allowed:
        raise ConfigError(f"--dataset {dataset} sends requests for {' or '.join(allowed)} endpoints, not for {api}", hint)


class RandomEmbedding(PerfDataset):
    name = "random_embedding"
    description = "texts of exact token length for /v1/embeddings (--embedding-batch texts per request)"
    options = [
        click.Option(["--embedding-batch", "embedding_batch"], type=click.IntRange(min=1), default=1,
                     help="random_embedding: texts per embeddings request (default 1)."),
        *PROMPT_LENGTH_OPTIONS,
    ]
    needs_tokenizer = True

    def check(self) -> None:
        require_api(self.name, self.settings.api, ("embeddings",), "use a /v1/embeddings URL (or --api embeddings)")
        super().check()

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        tok = need_tokenizer(self)
        lo, hi = prompt_lengths(self.options, self.name)
        batch = int(self.options.get("embedding_batch") or 1)
        rng = random.Random(self.settings.seed)
        words = word_tokens(tok)
        prefix_len = int(self.options.get("prefix_length") or 0)
        prefix = exact_text(tok, rng, words, prefix_len) if prefix_len else ""
        for i in range(count):
            inputs = [exact_text(tok, rng, words, rng.randint(lo, hi), prefix) for _ in range(batch)]
            yield GenerationRequest(inputs=inputs, params=self.settings.params(), id=str(i))


@hookimpl
def register_perf_datasets(register):
    register(RandomEmbedding)
