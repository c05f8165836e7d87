"""``--dataset sharegpt``: real conversations from a ShareGPT file, one request each.

A ShareGPT file is JSON (a list of conversations) or JSONL (one conversation per line); a
conversation is an object whose ``conversations`` (or ``messages``) list holds turns as
``{"from": "human"|"gpt"|"system", "value": TEXT}`` or ``{"role": ..., "content": ...}``.
Without ``--dataset-path`` a small sample written for lmgauge is used
(``data/sharegpt_sample.json``).

Each request is a conversation's first user message; its output length is the token count of
the recorded reply (each conversation's own output length as ``max_tokens``, as vLLM's
bench does) unless ``--max-tokens`` or ``--sharegpt-output-len N`` fixes it. Conversations
are taken in a seeded shuffled order and kept when their prompt is within
``--min/--max-prompt-length`` tokens and their reply has at least ``--sharegpt-min-output-len``
(default 4, as vLLM) and at most ``--sharegpt-max-output-len`` tokens; the kept ones are cycled
when ``--number`` asks for more. Lengths are counted with the run's tokenizer (cl100k_base by
default). ``read_conversations`` and the output-length rule are shared with ``multi_turn``.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator

import click

from lmgauge.plugin import ConfigError, DataError, GenerationRequest, PerfDataset, RequestSettings, hookimpl

from .base import bundled, jsonl_rows, need_tokenizer
from .random_prompts import PROMPT_LENGTH_OPTIONS

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
         "bing": "assistant", "assistant": "assistant", "model": "assistant", "system": "system"}
HINT = ('ShareGPT is a JSON list (or JSONL) of {"conversations": [{"from": "human", "value": ...}, '
        '{"from": "gpt", "value": ...}]}')

#: ``own`` or N: the output length of a ShareGPT request (shared by sharegpt and multi_turn)
OUTPUT_LEN_OPTION = click.Option(
    ["--sharegpt-output-len", "sharegpt_output_len"], default=None, metavar="own|N",
    help="max_tokens of ShareGPT requests: own = the recorded reply's token count (default unless --max-tokens), "
         "or a fixed N.")

Message = dict[str, str]


def read_conversations(path: str) -> list[list[Message]]:
    """Every conversation of a ShareGPT JSON or JSONL file as chat messages (role
    user/assistant/system, content); a file that is not ShareGPT is a one-line DataError."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"--dataset-path {path}: no such file", "pass a ShareGPT .json or .jsonl file")
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    head = text.lstrip()[:1]
    rows: list[tuple[int | None, object]]
    if head == "[":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})", HINT) from None
        rows = [(None, x) for x in data]
    elif head == "{":
        try:
            rows = [(None, json.loads(text))]
        except json.JSONDecodeError:
            rows = list(jsonl_rows(p, path, HINT))
    else:
        raise DataError(f"{path}: not ShareGPT JSON or JSONL (it starts with {text.lstrip()[:20]!r})", HINT)
    out = []
    for n, row in rows:
        conv = _messages(row)
        if conv is None:
            where = f"line {n}" if n is not None else f"conversation {len(out) + 1}"
            raise DataError(f"{path}: {where} has no `conversations` list of from/value (or role/content) turns", HINT)
        if conv:
            out.append(conv)
    if not out:
        raise DataError(f"{path}: no conversations", HINT)
    return out


def _messages(row: object) -> list[Message] | None:
    turns = None
    if isinstance(row, dict):
        turns = row.get("conversations", row.get("messages", row.get("conversation")))
    if not isinstance(turns, list):
        return None
    out: list[Message] = []
    for t in turns:
        if not isinstance(t, dict):
            return None
        role = ROLES.get(str(t.get("from", t.get("role", ""))).lower())
        content = t.get("value", t.get("content"))
        if role is None or not isinstance(content, str):
            continue  # tool calls, unknown speakers: not part of the chat
        out.append({"role": role, "content": content})
    return out


def exchanges(conv: list[Message]) -> tuple[list[Message], list[tuple[str, str | None]]]:
    """(system messages, [(user text, recorded reply or None), ...]) of a conversation;
    consecutive user messages are joined, replies before the first user message dropped."""
    system = [m for m in conv if m["role"] == "system"]
    pairs: list[tuple[str, str | None]] = []
    for m in conv:
        if m["role"] == "user":
            if pairs and pairs[-1][1] is None:
                pairs[-1] = (pairs[-1][0] + "\n" + m["content"], None)
            else:
                pairs.append((m["content"], None))
        elif m["role"] == "assistant" and pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], m["content"])
    return system, pairs


def output_length(option: object, settings: RequestSettings) -> int | None:
    """None: each request's own recorded reply length; else the fixed max_tokens."""
    if option is None:
        return settings.max_tokens
    text = str(option).strip().lower()
    if text == "own":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--sharegpt-output-len must be own or a positive integer, got {option!r}")
    return n


def turn_params(settings: RequestSettings, max_tokens: int):
    """Request parameters with this request's own max_tokens (--min-tokens never above it)."""
    params = settings.params(max_tokens=max_tokens)
    if "min_tokens" in params.extra_body:
        params.extra_body["min_tokens"] = min(int(params.extra_body["min_tokens"]), max_tokens)
    return params


def dataset_file(settings: RequestSettings) -> str:
    return settings.dataset_path or bundled("sharegpt_sample.json")


class ShareGPT(PerfDataset):
    name = "sharegpt"
    description = "real conversations from a ShareGPT JSON/JSONL file (bundled sample without --dataset-path)"
    options = [*PROMPT_LENGTH_OPTIONS[:2], OUTPUT_LEN_OPTION,
               click.Option(["--sharegpt-min-output-len", "sharegpt_min_output_len"], type=click.IntRange(min=1),
                            default=4, help="Drop conversations whose reply has fewer tokens (default 4, as vLLM)."),
               click.Option(["--sharegpt-max-output-len", "sharegpt_max_output_len"], type=click.IntRange(min=1),
                            default=None, help="Drop conversations whose reply has more tokens.")]
    needs_tokenizer = True

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        tok = need_tokenizer(self)
        o = self.options
        fixed = output_length(o.get("sharegpt_output_len"), self.settings)
        lo, hi = o.get("min_prompt_length") or 1, o.get("max_prompt_length")
        out_lo, out_hi = o.get("sharegpt_min_output_len") or 1, o.get("sharegpt_max_output_len")
        path = dataset_file(self.settings)
        convs = read_conversations(path)
        order = list(range(len(convs)))
        random.Random(self.settings.seed).shuffle(order)
        kept: list[GenerationRequest] = []
        for j in order:
            if len(kept) >= count:
                break
            system, pairs = exchanges(convs[j])
            if not pairs or pairs[0][1] is None:
                continue
            prompt, reply = pairs[0]
            n_in, n_out = tok.count(prompt), tok.count(reply)
            if n_in < lo or (hi is not None and n_in > hi) or n_out < out_lo or (out_hi is not None and n_out > out_hi):
                continue
            messages = [*system, {"role": "user", "content": prompt}]
            kept.append(GenerationRequest(messages=messages, prompt=prompt,
                                          params=turn_params(self.settings, fixed or n_out), id=str(len(kept))))
        if not kept:
            raise DataError(f"{path}: no conversation passes the length filters (prompt {lo}..{hi or '∞'} tokens, "
                            f"reply {out_lo}..{out_hi or '∞'} tokens)",
                            "relax --min/--max-prompt-length or --sharegpt-min/--sharegpt-max-output-len")
        for i in range(count):
            req = kept[i % len(kept)]
            yield GenerationRequest(messages=req.messages, prompt=req.prompt, params=req.params, id=str(i))


@hookimpl
def register_perf_datasets(register):
    register(ShareGPT)
