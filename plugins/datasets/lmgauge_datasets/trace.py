"""``--dataset trace``: replay a timestamped request trace.

Formats (``--trace-format auto`` picks by the file: ``.csv`` is BurstGPT, anything else
Mooncake JSONL):

- Mooncake JSONL, one request per line: ``timestamp`` (ms since the trace's start),
  ``input_length`` and ``output_length`` (tokens), optional ``hash_ids``: one id per block of
  ``--trace-block-size`` prompt tokens (512 in Mooncake's traces); requests sharing leading
  hash ids share those leading blocks.
- BurstGPT CSV with the columns ``Timestamp`` (seconds), ``Request tokens``, ``Response
  tokens`` (``Model`` filtered by ``--trace-model``); rows with no response tokens (failed
  requests in BurstGPT) are skipped.

Each request goes out at its recorded offset from the first one, divided by
``--trace-speedup`` (``GenerationRequest.at``; the dataset is ``timed``, so ``lmgauge perf``
runs one open-loop level: every request of the trace unless ``--number``/``--duration`` cut
it, ``--concurrency`` as an optional cap on requests in flight). A prompt has exactly the
recorded input tokens under the run's tokenizer: hash id h always stands for the same block of
tokens (seeded by h and ``--seed``), so a recorded shared prefix is sent as an identical
leading text, and tokens not covered by hash ids are unique to the request. ``max_tokens`` is
the recorded output length; ``--trace-exact-output`` also sends it as ``min_tokens`` with
``ignore_eos`` (vLLM), so outputs have the recorded length.

Without ``--dataset-path`` a tiny Mooncake-style sample is used (``data/mooncake_sample.jsonl``;
``data/burstgpt_sample.csv`` is a BurstGPT-style one).
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import click

from lmgauge.plugin import DataError, GenerationRequest, PerfDataset, hookimpl

from .base import bundled, jsonl_rows, need_tokenizer
from .random_prompts import exact_text, word_tokens

MOONCAKE_HINT = 'Mooncake JSONL lines look like {"timestamp": 0, "input_length": 900, "output_length": 40, "hash_ids": [0, 1]}'
BURSTGPT_HINT = "BurstGPT CSV needs the columns Timestamp, Request tokens, Response tokens"


@dataclass
class TraceRow:
    offset: float            # seconds from the trace's first request
    input_length: int
    output_length: int
    hash_ids: list[int]


def read_mooncake(path: Path, name: str) -> list[TraceRow]:
    rows = []
    for n, row in jsonl_rows(path, name, MOONCAKE_HINT):
        if not isinstance(row, dict):
            raise DataError(f"{name}: line {n} is not a JSON object", MOONCAKE_HINT)
        try:
            ts, n_in, n_out = float(row["timestamp"]), int(row["input_length"]), int(row["output_length"])
            hashes = [int(h) for h in row.get("hash_ids") or []]
        except KeyError as exc:
            raise DataError(f"{name}: line {n} has no `{exc.args[0]}`", MOONCAKE_HINT) from None
        except (TypeError, ValueError):
            raise DataError(f"{name}: line {n}: timestamp, input_length, output_length and hash_ids must be numbers",
                            MOONCAKE_HINT) from None
        if ts < 0 or n_in < 1 or n_out < 1:
            raise DataError(f"{name}: line {n}: timestamp must be ≥ 0 and input/output_length ≥ 1", MOONCAKE_HINT)
        rows.append(TraceRow(ts / 1000.0, n_in, n_out, hashes))
    return rows


def read_burstgpt(path: Path, name: str, model: str | None) -> list[TraceRow]:
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("Timestamp", "Request tokens", "Response tokens") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{name}: no column {missing[0]!r}", BURSTGPT_HINT)
        for n, row in enumerate(reader, 2):
            if model is not None and row.get("Model") != model:
                continue
            try:
                ts, n_in, n_out = float(row["Timestamp"]), int(float(row["Request tokens"])), int(float(row["Response tokens"]))
            except (TypeError, ValueError):
                raise DataError(f"{name}: line {n}: Timestamp, Request tokens and Response tokens must be numbers",
                                BURSTGPT_HINT) from None
            if n_in < 1 or n_out < 1:
                continue
            rows.append(TraceRow(ts, n_in, n_out, []))
    return rows


def read_trace(path_text: str, fmt: str, model: str | None) -> list[TraceRow]:
    """The trace's requests ordered by time, offsets counted from the first one."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DataError(f"--dataset-path {path_text}: no such file", "pass a Mooncake .jsonl or BurstGPT .csv trace")
    if fmt == "auto":
        fmt = "burstgpt" if path.suffix.lower() == ".csv" else "mooncake"
    rows = read_burstgpt(path, path_text, model) if fmt == "burstgpt" else read_mooncake(path, path_text)
    if not rows:
        what = f" for --trace-model {model}" if model is not None else ""
        raise DataError(f"{path_text}: no requests{what}", MOONCAKE_HINT if fmt == "mooncake" else BURSTGPT_HINT)
    rows.sort(key=lambda r: r.offset)
    t0 = rows[0].offset
    for r in rows:
        r.offset -= t0
    return rows


class PromptBuilder:
    """Prompts of exact token lengths in which hash id h is always the same block of tokens."""

    def __init__(self, tok, block: int, seed: int):
        self.tok, self.block, self.seed = tok, block, seed
        self.words = word_tokens(tok)
        self.blocks: dict[int, list[int]] = {}

    def block_ids(self, h: int) -> list[int]:
        ids = self.blocks.get(h)
        if ids is None:
            rng = random.Random(f"block:{self.seed}:{h}")
            ids = self.blocks[h] = [rng.choice(self.words) for _ in range(self.block)]
        return ids

    def text(self, row: TraceRow, index: int) -> str:
        ids: list[int] = []
        for h in row.hash_ids:
            if len(ids) >= row.input_length:
                break
            ids += self.block_ids(h)
        shared = min(len(ids), row.input_length)
        rng = random.Random(f"row:{self.seed}:{index}")
        ids = ids[:shared] + [rng.choice(self.words) for _ in range(row.input_length - shared)]
        text = self.tok.decode(ids)
        if self.tok.count(text) == row.input_length:
            return text
        # a tokenizer that merges across words: keep the full shared blocks, make the rest exact
        keep = self.tok.decode(ids[: shared - shared % self.block])
        return exact_text(self.tok, rng, self.words, row.input_length - (self.tok.count(keep) if keep else 0), keep)


class Trace(PerfDataset):
    name = "trace"
    description = "replay a timestamped trace: Mooncake JSONL (hash_ids = shared prefix blocks) or BurstGPT CSV"
    options = [
        click.Option(["--trace-speedup", "trace_speedup"], type=click.FloatRange(min=0, min_open=True), default=1.0,
                     help="Replay X times faster (offsets divided by X)."),
        click.Option(["--trace-block-size", "trace_block_size"], type=click.IntRange(min=1), default=512,
                     help="Tokens per hash id of a Mooncake trace (512 in Mooncake's traces)."),
        click.Option(["--trace-format", "trace_format"], type=click.Choice(["auto", "mooncake", "burstgpt"]),
                     default="auto", help="Trace format (auto: .csv is BurstGPT, else Mooncake JSONL)."),
        click.Option(["--trace-model", "trace_model"], default=None,
                     help="BurstGPT: replay only the rows of this Model (e.g. GPT-4)."),
        click.Option(["--trace-exact-output", "trace_exact_output"], is_flag=True, default=False,
                     help="Also send the recorded output length as min_tokens with ignore_eos (vLLM)."),
    ]
    needs_tokenizer = True
    timed = True  # requests carry their own send offsets: one open-loop level at those offsets

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        o, tok = self.options, need_tokenizer(self)
        rows = read_trace(self.settings.dataset_path or bundled("mooncake_sample.jsonl"), o.get("trace_format") or "auto",
                          o.get("trace_model"))
        speedup = float(o.get("trace_speedup") or 1.0)
        builder = PromptBuilder(tok, int(o.get("trace_block_size") or 512), self.settings.seed)
        for i, row in enumerate(rows[:count]):
            text = builder.text(row, i)
            params = self.settings.params(max_tokens=row.output_length)
            if o.get("trace_exact_output"):
                params.extra_body.update(min_tokens=row.output_length, ignore_eos=True)
            elif "min_tokens" in params.extra_body:
                params.extra_body["min_tokens"] = min(int(params.extra_body["min_tokens"]), row.output_length)
            yield GenerationRequest(messages=[{"role": "user", "content": text}], prompt=text, params=params,
                                    id=str(i), at=row.offset / speedup)


@hookimpl
def register_perf_datasets(register):
    register(Trace)
