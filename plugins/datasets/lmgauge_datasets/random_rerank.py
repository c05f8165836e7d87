"""``--dataset random_rerank``: a query and documents of exact token lengths, for vLLM's
/v1/rerank and /v1/score.

Each request holds one query of ``--rerank-query-length`` tokens and ``--rerank-documents N``
documents of ``--rerank-document-length`` tokens each (random whole-word tokens, re-tokenized
until exact, as the random dataset builds prompts; counted under the run's tokenizer).
"""
from __future__ import annotations

import random
from typing import Iterator

import click

from lmgauge.plugin import GenerationRequest, PerfDataset, hookimpl

from .base import need_tokenizer
from .random_embedding import require_api
from .random_prompts import exact_text, word_tokens


class RandomRerank(PerfDataset):
    name = "random_rerank"
    description = "a query and N documents of exact token lengths for /v1/rerank and /v1/score"
    options = [
        click.Option(["--rerank-documents", "rerank_documents"], type=click.IntRange(min=1), default=10,
                     help="random_rerank: documents per request (default 10)."),
        click.Option(["--rerank-query-length", "rerank_query_length"], type=click.IntRange(min=1), default=32,
                     help="random_rerank: query tokens (default 32)."),
        click.Option(["--rerank-document-length", "rerank_document_length"], type=click.IntRange(min=1), default=256,
                     help="random_rerank: tokens of each document (default 256)."),
    ]
    needs_tokenizer = True

    def check(self) -> None:
        require_api(self.name, self.settings.api, ("rerank", "score"), "use a /v1/rerank or /v1/score URL (or --api rerank)")
        super().check()

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        tok = need_tokenizer(self)
        o = self.options
        docs, q_len, d_len = int(o.get("rerank_documents") or 10), int(o.get("rerank_query_length") or 32), \
            int(o.get("rerank_document_length") or 256)
        rng = random.Random(self.settings.seed)
        words = word_tokens(tok)
        for i in range(count):
            query = exact_text(tok, rng, words, q_len)
            documents = [exact_text(tok, rng, words, d_len) for _ in range(docs)]
            yield GenerationRequest(query=query, documents=documents, params=self.settings.params(), id=str(i))


@hookimpl
def register_perf_datasets(register):
    register(RandomRerank)
