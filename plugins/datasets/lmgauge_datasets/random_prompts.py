"""``--dataset random``: prompts of exactly the requested number of tokens.

Each prompt is ``--prefix-length`` shared tokens followed by L random tokens, L drawn
uniformly from ``[--min-prompt-length, --max-prompt-length]`` (seeded). Tokens are drawn from
"whole word" vocabulary entries (a leading space plus 2–12 letters, each re-encoding to itself),
so the decoded text re-tokenizes to the same count; every prompt is re-tokenized and corrected
until its length is exact, and a prompt that cannot be made exact is an error, not a silent
approximation. Lengths count the user text, not the chat template the server adds.
"""
from __future__ import annotations

import random
import re
from typing import Iterator

import click

from lmgauge.plugin import ConfigError, GenerationRequest, PerfDataset, hookimpl, make_request

from .base import need_tokenizer

WORD = re.compile(r"^ [A-Za-z]{2,12}$")
_WORDS: dict[tuple, list[int]] = {}


def word_tokens(tok, limit: int = 4000) -> list[int]:
    """Token ids that decode to ' word' and re-encode to exactly themselves (cached per
    tokenizer: a sweep builds prompts for every level)."""
    key = (tok.name, tok.kind, tok.vocab_size, limit)
    if key not in _WORDS:
        _WORDS[key] = _word_tokens(tok, limit)
    return _WORDS[key]


def _word_tokens(tok, limit: int) -> list[int]:
    special = tok.special_ids()
    out = []
    for tid in range(min(tok.vocab_size, 120_000)):
        if tid in special:
            continue
        try:
            text = tok.decode([tid])
        except Exception:  # noqa: BLE001 - holes in some vocabularies
            continue
        if WORD.match(text) and tok.encode(text) == [tid]:
            out.append(tid)
            if len(out) >= limit:
                break
    if len(out) < 50:
        raise ConfigError(f"tokenizer {tok.name} has too few plain word tokens to build random prompts",
                          "use another --tokenizer (e.g. cl100k_base)")
    return out


def exact_text(tok, rng: random.Random, words: list[int], length: int, prefix: str = "") -> str:
    """Text of exactly ``length`` tokens after ``prefix`` (whose tokens are counted apart)."""
    base = len(tok.encode(prefix)) if prefix else 0
    ids = [rng.choice(words) for _ in range(length)]
    for _ in range(20):
        text = prefix + tok.decode(ids)
        got = len(tok.encode(text)) - base
        if got == length:
            return text
        if got > length:
            ids = ids[: max(0, len(ids) - (got - length))]
        else:
            ids += [rng.choice(words) for _ in range(length - got)]
    raise ConfigError(f"could not build a prompt of exactly {length} tokens with tokenizer {tok.name}",
                      "try another --tokenizer")


#: prompt-length options in tokens (EvalScope's names), shared by the datasets that build
#: prompts of exact lengths
PROMPT_LENGTH_OPTIONS = [
    click.Option(["--min-prompt-length", "min_prompt_length"], type=click.IntRange(min=1), default=None,
                 help="Minimum prompt tokens (random, multi_turn: drawn uniformly in [min, max] per prompt or user "
                      "turn; sharegpt: a filter)."),
    click.Option(["--max-prompt-length", "max_prompt_length"], type=click.IntRange(min=1), default=None,
                 help="Maximum prompt tokens."),
    click.Option(["--prefix-length", "prefix_length"], type=click.IntRange(min=0), default=0,
                 help="Tokens of a prefix shared by all prompts (multi_turn: by every session's first turn)."),
]


class RandomDataset(PerfDataset):
    name = "random"
    description = "random prompts of exact token length (--min/--max-prompt-length, --prefix-length, --tokenizer)"
    options = PROMPT_LENGTH_OPTIONS
    needs_tokenizer = True

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        o = self.options
        tok = need_tokenizer(self)
        lo = int(o.get("min_prompt_length") or 0)
        hi = int(o.get("max_prompt_length") or 0)
        if lo <= 0 or hi <= 0:
            raise ConfigError("--dataset random needs --min-prompt-length and --max-prompt-length (tokens)",
                              "e.g. --min-prompt-length 1024 --max-prompt-length 1024")
        if lo > hi:
            raise ConfigError(f"--min-prompt-length {lo} is larger than --max-prompt-length {hi}")
        rng = random.Random(self.settings.seed)
        words = word_tokens(tok)
        prefix = exact_text(tok, rng, words, int(o.get("prefix_length") or 0)) if o.get("prefix_length") else ""
        for i in range(count):
            yield make_request(exact_text(tok, rng, words, rng.randint(lo, hi), prefix), self.settings, i)


@hookimpl
def register_perf_datasets(register):
    register(RandomDataset)
