"""Plain data shared by the core and every plugin.

These dataclasses are part of the plugin contract (see hookspecs.py): benchmarks produce
:class:`Sample`, backends turn a :class:`GenerationRequest` into :class:`Completion` objects
(eval) or fill a :class:`PerfRecord` (perf), benchmarks turn a completion into a :class:`Score`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    """One question of a benchmark.

    ``prompt`` is the user message text (the benchmark's template already applied) or a full
    list of chat messages. ``gold`` is the reference answer in whatever form the benchmark's
    ``score`` understands. ``subsets`` names every subset the question belongs to (e.g.
    ``("Level 3", "Algebra")``); ``OVERALL`` is implied and must not be listed.
    ``question`` is the raw question text shown in reports.
    """

    id: str
    benchmark: str
    prompt: str | list[dict[str, str]]
    gold: Any
    subsets: tuple[str, ...] = ()
    question: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationParams:
    """Sampling parameters. ``None`` means "server/model default"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int = 1
    stop: list[str] | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    stream: bool = True  # perf only: --no-stream sends one non-streaming request


@dataclass
class GenerationRequest:
    """What a backend is asked to generate: chat ``messages`` or a raw ``prompt``.

    ``at`` (perf only): the request's own send offset in seconds from the start of the level
    (trace replay); the load generator honours it in open-loop mode.
    """

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    id: str = ""
    at: float | None = None


@dataclass
class Session:
    """A perf conversation: user turns sent one after another, each with the whole history.

    ``turns[k].messages`` holds only what turn k adds (its user message; a first turn may add
    a system message too) and ``turns[k].params`` its sampling parameters. The load generator
    sends turn k with every earlier turn's messages followed by the server's real answer to
    it, waits ``think_time`` seconds after an answer before the next turn, and stops a
    session at its first failed turn. ``at``: the session's own start offset (as
    :attr:`GenerationRequest.at`). A perf dataset may yield sessions instead of requests.
    """

    turns: list[GenerationRequest]
    think_time: float = 0.0
    id: str = ""
    at: float | None = None


@dataclass
class Completion:
    """One generated answer.

    ``text`` is the visible content; ``reasoning`` holds a separate reasoning field the server
    returned (``reasoning_content`` / ``reasoning``), kept for the record but never graded.
    ``finish_reason == "length"`` means the output was cut by ``max_tokens``.
    """

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class Score:
    """A benchmark's verdict on one completion.

    ``value`` is 1.0 for correct and 0.0 for wrong (benchmarks may use partial credit).
    ``extracted`` is the answer found in the response (``None`` when none was found), and
    ``detail`` any note on how it was graded (e.g. ``"math-verify timeout"``).
    """

    value: float
    extracted: str | None = None
    detail: str | None = None

    @property
    def correct(self) -> bool:
        return self.value >= 1.0


@dataclass
class PerfRecord:
    """The timeline of one perf request, filled in place by ``Backend.stream``.

    All times are ``time.perf_counter()`` seconds. ``scheduled`` is when the load generator
    meant to send, ``sent`` when the request left, ``chunk_times`` when each content-bearing
    chunk arrived, with ``chunk_tokens`` its token count where known. ``first_content`` is the
    first chunk of visible content (after any reasoning). ``cached_tokens`` is the server's
    ``usage.prompt_tokens_details.cached_tokens`` (prefix-cache hits), when it sends it.
    A turn of a :class:`Session` has ``session`` (the session's number in the level), ``turn``
    (1 for the first) and ``turns`` (turns the session has).
    """

    index: int = 0
    scheduled: float = 0.0
    sent: float = 0.0
    first_token: float | None = None
    first_content: float | None = None
    end: float = 0.0
    chunk_times: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_source: str = "server"  # "server" | "tokenizer"
    success: bool = False
    error: str | None = None
    output_text: str = ""
    chunk_texts: list[str] = field(default_factory=list)  # text of each chunk (not stored)
    cached_tokens: int | None = None
    session: int | None = None
    turn: int | None = None
    turns: int | None = None
