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

    A message's ``content`` is text or a list of OpenAI content parts (``{"type": "text",
    "text": ...}``, ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``);
    ``images`` then holds the (width, height) of each image, in order (perf records them).
    Endpoints that generate nothing (perf only) read other fields: ``inputs`` (embeddings: the
    texts to embed; ``prompt`` alone when None), ``query`` and ``documents`` (rerank and score).

    ``at`` (perf only): the request's own send offset in seconds from the start of the level
    (trace replay); the load generator honours it in open-loop mode.
    """

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    id: str = ""
    at: float | None = None
    inputs: list[str] | None = None
    query: str | None = None
    documents: list[str] | None = None
    images: list[tuple[int, int]] | None = None

    def input_texts(self) -> list[str]:
        """The texts whose tokens are the request's input: embedding inputs, the query and
        documents, or the text of the messages (text parts only: no image data), else the prompt."""
        if self.inputs is not None:
            return list(self.inputs)
        if self.documents is not None:
            return [self.query or "", *self.documents]
        if self.messages is not None:
            out = []
            for m in self.messages:
                content = m.get("content")
                if isinstance(content, list):
                    out.extend(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
                elif content is not None:
                    out.append(str(content))
            return ["\n".join(out)]
        return [self.prompt or ""]


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


#: what a :class:`Score` is: a verdict, no verdict (the grader could not tell), or no grading
#: at all (the grader itself failed: never counted as a wrong answer)
DECIDED, UNDECIDED, GRADER_ERROR = "decided", "undecided", "error"
SCORE_STATUSES = (DECIDED, UNDECIDED, GRADER_ERROR)


@dataclass
class Score:
    """A benchmark's verdict on one completion.

    ``value`` is 1.0 for correct and 0.0 for wrong (benchmarks may use partial credit).
    ``extracted`` is the answer found in the response (``None`` when none was found), and
    ``detail`` any note on how it was graded (e.g. ``"math-verify timeout"``).

    ``status`` says what the score is:

    - ``"decided"``: a verdict;
    - ``"undecided"``: the grader found no answer it could check, or could not compare it
      (math-verify timed out): scored as ``value`` (0 = not credited), and what an LLM judge
      in fallback mode is asked about;
    - ``"error"``: the grader itself failed (it raised, its worker process died): no verdict
      at all. The sample is counted as a grading error, never as a wrong answer, and
      ``lmgauge regrade`` grades it again.

    ``info`` holds what a benchmark wants journaled beside the verdict and shown by its
    sample view (plain JSON: e.g. a code benchmark's test outcomes); ``None`` when nothing.
    """

    value: float
    extracted: str | None = None
    detail: str | None = None
    status: str = DECIDED
    info: dict[str, Any] | None = None

    @property
    def correct(self) -> bool:
        return self.value >= 1.0

    @classmethod
    def grader_error(cls, detail: str) -> "Score":
        """No verdict: the grader failed (``detail`` says how)."""
        return cls(0.0, None, detail[:300], GRADER_ERROR)


@dataclass
class PerfRecord:
    """The timeline of one perf request, filled in place by ``Backend.stream``.

    All times are ``time.perf_counter()`` seconds. ``scheduled`` is when the load generator
    meant to send, ``sent`` when the request left, ``chunk_times`` when each content-bearing
    chunk arrived, with ``chunk_tokens`` its token count where known. ``first_content`` is the
    first chunk of visible content (after any reasoning). ``cached_tokens`` is the server's
    ``usage.prompt_tokens_details.cached_tokens`` (prefix-cache hits), when it sends it.
    A turn of a :class:`Session` has ``session`` (the session's number in the level), ``turn``
    (1 for the first) and ``turns`` (turns the session has). Endpoints that return vectors or
    scores (embeddings, rerank, score) leave every chunk and TTFT field empty and set ``inputs``
    (and ``embedding_dim``); ``images`` copies the request's.
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
    inputs: int | None = None  # embeddings: texts sent; rerank/score: documents sent
    embedding_dim: int | None = None  # embeddings: the length of the vectors returned
    images: list[tuple[int, int]] | None = None  # (width, height) of each image sent
    endpoint: str | None = None  # several --url: the URL this request went to
    failure_kind: str | None = None  # a failed request's kind: one of FAILURE_KINDS
    failure_group: str | None = None  # how its failures are counted (e.g. "HTTP 500"); default: the kind

    def fail(self, kind: str, error: str, group: str | None = None) -> None:
        """Mark the request failed: ``kind`` one of :data:`FAILURE_KINDS`, ``error`` the
        whole text (shown as the first example of its group), ``group`` the name its
        failures are counted under in the summary (default: the kind)."""
        self.success = False
        self.failure_kind = kind
        self.error = error
        self.failure_group = group or kind


#: what a failed perf request's ``failure_kind`` may be: the server answered an HTTP error
#: (``http``); a connect or read timeout (``timeout``); the connection failed or broke
#: (``connection``); the response broke the protocol: malformed SSE or JSON, a stream cut
#: before its end, no [DONE] (``protocol``); the server reported an error inside the
#: response (``server_error``); the response held no content (``empty``); the response was
#: complete but wrong for the request, e.g. the wrong number of vectors (``invalid``); the
#: request could not be sent as asked (``client``)
FAILURE_KINDS = ("http", "timeout", "connection", "protocol", "server_error", "empty", "invalid", "client")
