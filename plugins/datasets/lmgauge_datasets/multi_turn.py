"""``--dataset multi_turn``: multi-turn sessions (chat conversations sent turn by turn).

Each item is a :class:`lmgauge.types.Session`; the load generator sends turn k with the whole
history, including the server's real answers to the earlier turns (loadgen.py), so ``--number``
counts sessions and ``--concurrency`` sessions in flight.

- Synthetic (no ``--dataset-path``): ``--turns N`` user turns per session (or ``--min-turns`` /
  ``--max-turns``, EvalScope's names: drawn uniformly, seeded), each user turn of exactly L
  tokens with L drawn in ``[--min-prompt-length, --max-prompt-length]`` as the random dataset
  does (``--prefix-length`` shared tokens open every session's first turn); output lengths
  come from ``--max-tokens`` / ``--min-tokens``.
- ``--dataset-path FILE``: a ShareGPT JSON/JSONL file (sharegpt.py); a session is a
  conversation's user turns (system messages first), at least ``--min-turns`` of them, cut at
  ``--max-turns`` / ``--turns``; each turn's ``max_tokens`` is the token count of the recorded
  reply (``--sharegpt-output-len own``, the default without ``--max-tokens``), and a last user
  turn without a recorded reply is then dropped. Conversations come in a seeded shuffled
  order and are cycled when ``--number`` asks for more.

``--think-time S`` waits S seconds between an answer and the next turn.
"""
from __future__ import annotations

import random
from typing import Iterator

import click

from lmgauge.plugin import ConfigError, DataError, GenerationRequest, PerfDataset, Session, hookimpl

from .base import need_tokenizer
from .random_prompts import PROMPT_LENGTH_OPTIONS, exact_text, word_tokens
from .sharegpt import OUTPUT_LEN_OPTION, exchanges, output_length, read_conversations, turn_params


class MultiTurn(PerfDataset):
    name = "multi_turn"
    description = ("multi-turn sessions sending the whole history each turn: synthetic (--turns, exact token "
                   "lengths) or ShareGPT conversations (--dataset-path)")
    options = [
        click.Option(["--turns", "turns"], type=click.IntRange(min=1), default=None,
                     help="User turns per session (sets --min-turns and --max-turns)."),
        click.Option(["--min-turns", "min_turns"], type=click.IntRange(min=1), default=None,
                     help="Fewest user turns per session (EvalScope's name; default 1 for files)."),
        click.Option(["--max-turns", "max_turns"], type=click.IntRange(min=1), default=None,
                     help="Most user turns per session (files: longer conversations are cut)."),
        click.Option(["--think-time", "think_time"], type=click.FloatRange(min=0), default=0.0,
                     help="Seconds between an answer and the session's next turn."),
        *PROMPT_LENGTH_OPTIONS, OUTPUT_LEN_OPTION,
    ]
    needs_tokenizer = True

    def turn_range(self) -> tuple[int | None, int | None]:
        o = self.options
        turns, lo, hi = o.get("turns"), o.get("min_turns"), o.get("max_turns")
        if turns is not None:
            if (lo is not None and lo != turns) or (hi is not None and hi != turns):
                raise ConfigError(f"--turns {turns} contradicts --min-turns/--max-turns", "give --turns alone")
            return turns, turns
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"--min-turns {lo} is larger than --max-turns {hi}")
        return lo, hi

    def requests(self, count: int) -> Iterator[Session]:
        need_tokenizer(self)
        if self.settings.dataset_path:
            return self._from_file(count)
        return self._synthetic(count)

    def _synthetic(self, count: int) -> Iterator[Session]:
        o, tok = self.options, self.tokenizer
        lo_turns, hi_turns = self.turn_range()
        if hi_turns is None:
            raise ConfigError("--dataset multi_turn needs --turns N (user turns per session), or --dataset-path FILE",
                              "e.g. --turns 4 --min-prompt-length 128 --max-prompt-length 128 --max-tokens 64")
        lo_turns = lo_turns or 1
        lo, hi = int(o.get("min_prompt_length") or 0), int(o.get("max_prompt_length") or 0)
        if lo <= 0 or hi <= 0:
            raise ConfigError("--dataset multi_turn needs --min-prompt-length and --max-prompt-length (tokens per user turn)",
                              "e.g. --min-prompt-length 128 --max-prompt-length 128")
        if lo > hi:
            raise ConfigError(f"--min-prompt-length {lo} is larger than --max-prompt-length {hi}")
        rng = random.Random(self.settings.seed)
        words = word_tokens(tok)
        prefix = exact_text(tok, rng, words, int(o["prefix_length"])) if o.get("prefix_length") else ""
        think = float(o.get("think_time") or 0.0)
        params = self.settings.params()
        for i in range(count):
            n = rng.randint(lo_turns, hi_turns)
            turns = []
            for k in range(n):
                text = exact_text(tok, rng, words, rng.randint(lo, hi), prefix if k == 0 else "")
                turns.append(GenerationRequest(messages=[{"role": "user", "content": text}], prompt=text,
                                               params=params, id=f"{i}.{k}"))
            yield Session(turns=turns, think_time=think, id=str(i))

    def _from_file(self, count: int) -> Iterator[Session]:
        tok, path = self.tokenizer, self.settings.dataset_path
        lo_turns, hi_turns = self.turn_range()
        lo_turns = lo_turns or 1
        fixed = output_length(self.options.get("sharegpt_output_len"), self.settings)
        think = float(self.options.get("think_time") or 0.0)
        convs = read_conversations(path)
        order = list(range(len(convs)))
        random.Random(self.settings.seed).shuffle(order)
        kept: list[list[GenerationRequest]] = []
        for j in order:
            if len(kept) >= count:
                break
            system, pairs = exchanges(convs[j])
            if hi_turns is not None:
                pairs = pairs[:hi_turns]
            if fixed is None:  # own output lengths: a turn needs its recorded reply
                while pairs and pairs[-1][1] is None:
                    pairs.pop()
            if len(pairs) < lo_turns or not pairs:
                continue
            turns = []
            for k, (text, reply) in enumerate(pairs):
                messages = ([*system] if k == 0 else []) + [{"role": "user", "content": text}]
                n_out = fixed or max(1, tok.count(reply or ""))
                turns.append(GenerationRequest(messages=messages, prompt=text, params=turn_params(self.settings, n_out)))
            kept.append(turns)
        if not kept:
            raise DataError(f"{path}: no conversation has {lo_turns} or more user turns with recorded replies",
                            "lower --min-turns, or pass --max-tokens to send turns without a recorded reply")
        for i in range(count):
            yield Session(turns=kept[i % len(kept)], think_time=think, id=str(i))


@hookimpl
def register_perf_datasets(register):
    register(MultiTurn)
