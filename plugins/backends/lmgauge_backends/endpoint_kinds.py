"""The endpoint kinds of the openai backend, one small class each, registered in :data:`KINDS`.

A kind declares everything that differs from one endpoint to the next:

- ``name`` and ``aliases``: the ``--api`` values that name it (EvalScope's included); ``path``:
  where it lives after the base URL (``http://HOST:PORT/v1`` + ``/chat/completions``);
- what it measures: ``generates_text`` (True: TTFT, TTFC, ITL, TPOT and output tokens mean
  something; False: the answer is one JSON body of vectors or scores, so a request has a
  latency, input tokens and ``record.inputs``, which count ``counts``: inputs embedded or
  documents scored); ``streams`` (the answer may be an SSE stream; False: always one JSON
  body), ``serves_eval`` (``lmgauge eval`` can grade its answers), ``takes_images`` (image parts
  in chat messages);
- ``body(request, stream)``: the JSON body of a request, for eval (``n``) and perf, streamed
  or not; a :class:`ConfigError` for a request the endpoint cannot take;
- ``parser(record, request)``: the state of one response. For a text kind it is an
  :class:`SSEParser`: ``openai_stream`` feeds it the raw bytes of each socket read with the
  read's timestamp, and it turns SSE events into the record's chunk stamps, texts and usage;
- ``whole(state, body, now)``: read a response that came as one JSON body (``--no-stream``,
  a server that ignored ``stream``, and every answer of a kind that does not stream);
- ``complete(state, count_tokens)``: after the body: success, token counts and usage source,
  or a typed failure;
- ``completion(choice)``: eval, one choice of a whole response as a :class:`Completion`.

A failed request raises :class:`FailedRequest` (a failure kind from ``FAILURE_KINDS``, the
full text, and the group the summary counts it under), or ``complete`` marks the record with
``record.fail(...)``. The backend holds one kind object (``OpenAIBackend.kind``) and sets the
core's ``Backend.generates_text`` from it, so nothing outside this plugin names a kind.

Adding a kind: one class here (a :class:`TextKind` or a :class:`PoolingKind`), and the class in
:data:`KINDS`.

The SSE line splitting (:meth:`SSEParser.feed`) is the perf hot path: ``bytes.find`` over the
read buffer, one slice per line, orjson for each event's data; see openai_stream's module doc
and bench/RESULTS.md before changing it.
"""
from __future__ import annotations

import base64
from typing import Any, Callable, ClassVar, Mapping

import orjson

from lmgauge.plugin import BackendError, Completion, ConfigError, GenerationRequest, PerfRecord


class FailedRequest(Exception):
    """A request that failed in a way the response shows: ``kind`` one of the core's
    ``FAILURE_KINDS``, ``message`` the whole text, ``group`` what the summary counts it under
    (None: the first 80 characters of the message, for messages that name the server's own
    error, e.g. ``error event: out of memory``)."""

    def __init__(self, kind: str, message: str, group: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.group = group


def error_text(body: bytes, limit: int = 200) -> str:
    """The message of an error body (OpenAI ``{"error": {"message": ...}}``, FastAPI
    ``{"detail": ...}``, or the raw text), on one line, at most ``limit`` characters."""
    try:
        data = orjson.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict):
            err = err.get("message") or err.get("detail") or err
        text = str(err)
    except Exception:  # noqa: BLE001 - any body is fine to quote
        text = body[:2 * limit].decode("utf-8", "replace")
    return " ".join(text.split())[:limit]


def _json_object(body: bytes, what: str) -> dict:
    """A whole response body as a JSON object (orjson's JSONDecodeError passes through)."""
    data = orjson.loads(body)
    if not isinstance(data, dict):
        raise FailedRequest("protocol", f"malformed {what}: not a JSON object", f"malformed {what}")
    if data.get("error"):
        raise FailedRequest("server_error", f"error response: {error_text(body)}", "error response")
    return data


# -- streamed responses ---------------------------------------------------------------------
class SSEParser:
    """State of one SSE stream: splits the bytes into events (``feed``, ``finish``) and hands
    each event's data to :meth:`event`, which subclasses implement. ``done``: the stream's end
    marker was seen; ``finished``: a choice carried a finish_reason; ``usage`` the last usage
    object (chat names: ``prompt_tokens``, ``completion_tokens``, ``prompt_tokens_details``)."""

    __slots__ = ("record", "done", "finished", "usage", "data", "usage_per_chunk", "chunk_usage")
    #: the failure of a body that ends before the stream's end
    TRUNCATED = "truncated stream: the body ended before a finish_reason and [DONE]"

    def __init__(self, record: PerfRecord):
        self.record = record
        self.done = False                 # [DONE] seen
        self.finished = False             # a choice carried a finish_reason
        self.usage = None
        self.data: list[bytes] = []       # data lines of the event being read
        self.usage_per_chunk = True       # every content chunk carried usage so far
        self.chunk_usage: list[int] = []  # cumulative completion_tokens at each content chunk

    def feed(self, buf: bytes, now: float) -> int:
        """Handle every complete line in ``buf``; return how many bytes were used."""
        start = 0
        find = buf.find
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                return start
            end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl  # strip \r
            if end == start:  # blank line: dispatch the event
                if self.data:
                    self.event(self.data[0] if len(self.data) == 1 else b"\n".join(self.data), now)
                    self.data = []
            elif buf.startswith(b"data:", start):
                self.data.append(buf[start + 5:end])
            # comments (":"), event:, id:, retry: lines carry nothing for us
            start = nl + 1

    def finish(self, now: float) -> None:
        """End of body: an event not followed by a blank line still counts."""
        if self.data:
            self.event(b"\n".join(self.data), now)
            self.data = []

    def event(self, data: bytes, now: float) -> None:
        raise NotImplementedError


class ChoicesParser(SSEParser):
    """Chat and completions streams: ``choices[].delta`` (chat: ``content``, ``reasoning_content``
    / ``reasoning``) or ``choices[].text`` (completions), ``usage`` (with every chunk when the
    server sends continuous usage: per-chunk token counts), ``[DONE]`` at the end."""

    __slots__ = ("chat",)

    def __init__(self, record: PerfRecord, chat: bool):
        super().__init__(record)
        self.chat = chat

    def event(self, data: bytes, now: float) -> None:
        data = data.strip()
        if data == b"[DONE]":
            self.done = True
            return
        if not data:
            return
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise FailedRequest("protocol", "malformed SSE: an event is not a JSON object", "malformed SSE")
        err = obj.get("error")
        if err:
            raise FailedRequest("server_error", f"error event: {error_text(orjson.dumps(obj))}")
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        rec = self.record
        for ch in obj.get("choices") or ():
            if self.chat:
                delta = ch.get("delta") or ch.get("message") or {}
                text = delta.get("content")
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            else:
                text = ch.get("text")
                reasoning = None
            if ch.get("finish_reason"):
                self.finished = True
            if text or reasoning:
                rec.chunk_times.append(now)
                rec.chunk_texts.append(reasoning + text if (reasoning and text) else (text or reasoning))
                if rec.first_token is None:
                    rec.first_token = now
                if text and rec.first_content is None:
                    rec.first_content = now
                if self.usage_per_chunk:
                    ct = usage.get("completion_tokens") if usage else None
                    if ct is None:
                        self.usage_per_chunk = False
                    else:
                        self.chunk_usage.append(int(ct))


_CONTENT_EVENTS = frozenset(("response.output_text.delta", "response.refusal.delta"))
_REASONING_EVENTS = frozenset(("response.reasoning_text.delta", "response.reasoning_summary_text.delta"))


class ResponsesParser(SSEParser):
    """Responses API streams: typed events. ``response.output_text.delta`` (and
    ``response.refusal.delta``) are content, ``response.reasoning_text.delta`` and
    ``response.reasoning_summary_text.delta`` reasoning; ``response.completed`` or
    ``response.incomplete`` end the stream (``done`` and ``finished`` together) with its usage;
    ``response.failed`` and ``error`` events fail it."""

    __slots__ = ()
    TRUNCATED = "truncated stream: the body ended before response.completed"

    def __init__(self, record: PerfRecord):
        super().__init__(record)
        self.usage_per_chunk = False

    def event(self, data: bytes, now: float) -> None:
        data = data.strip()
        if not data or data == b"[DONE]":
            return
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise FailedRequest("protocol", "malformed SSE: an event is not a JSON object", "malformed SSE")
        kind = obj.get("type")
        if kind in _CONTENT_EVENTS or kind in _REASONING_EVENTS:
            text = obj.get("delta")
            if not text:
                return
            rec = self.record
            rec.chunk_times.append(now)
            rec.chunk_texts.append(text)
            if rec.first_token is None:
                rec.first_token = now
            if rec.first_content is None and kind in _CONTENT_EVENTS:
                rec.first_content = now
        elif kind == "response.completed" or kind == "response.incomplete":
            usage = (obj.get("response") or {}).get("usage")
            if usage:
                self.usage = _chat_usage(usage)
            self.done = self.finished = True
        elif kind == "response.failed" or kind == "error" or obj.get("error"):
            failed = obj.get("response") if kind == "response.failed" else obj
            raise FailedRequest("server_error", f"error event: {error_text(orjson.dumps(failed or obj))}")


def _chat_usage(usage: dict) -> dict:
    """Responses API usage (input/output tokens) under the chat names ``complete`` reads."""
    return {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
            "prompt_tokens_details": usage.get("input_tokens_details")}


# -- the kinds ------------------------------------------------------------------------------
class EndpointKind:
    """One endpoint kind (see the module doc). Constructed by the backend with the model name
    and its option values (``require_done``, ``embedding_dim`` …)."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    path: ClassVar[str] = ""
    generates_text: ClassVar[bool] = True
    #: the answer may come as an SSE stream (False: always one JSON body, whatever was asked)
    streams: ClassVar[bool] = True
    #: what ``record.inputs`` counts for a kind that does not generate text
    counts: ClassVar[str | None] = None
    serves_eval: ClassVar[bool] = False
    takes_images: ClassVar[bool] = False

    def __init__(self, model: str, options: Mapping[str, Any] | None = None):
        self.model = model
        self.options = dict(options or {})

    def body(self, request: GenerationRequest, stream: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, request: GenerationRequest) -> None:
        """A one-line ConfigError when this endpoint cannot take ``request`` (perf checks a
        dataset's first request before the run)."""
        if request.images and not self.takes_images:
            able = " or ".join(k.name for k in KINDS.values() if k.takes_images)
            raise ConfigError(f"requests with images need a {able} endpoint, not {self.name}",
                              "use a /v1/chat/completions URL")
        self.body(request)

    def parser(self, record: PerfRecord, request: GenerationRequest) -> Any:
        raise NotImplementedError

    def whole(self, state: Any, body: bytes, now: float) -> None:
        raise NotImplementedError

    def complete(self, state: Any, count_tokens: Callable[[str], int | None]) -> None:
        raise NotImplementedError

    def completion(self, choice: Any) -> Completion:
        raise ConfigError(f"lmgauge eval needs a chat or completions endpoint, not {self.name}")


class TextKind(EndpointKind):
    """A kind that generates text, streamed as SSE (chat, completions, responses)."""

    def __init__(self, model: str, options: Mapping[str, Any] | None = None):
        super().__init__(model, options)
        self.require_done = self.options.get("require_done", True) is not False

    def _sampling(self, body: dict[str, Any], request: GenerationRequest, stream: bool) -> dict[str, Any]:
        """The OpenAI sampling fields, ``n``, streaming with usage, and ``--extra-args``."""
        p = request.params
        for key in ("max_tokens", "temperature", "top_p", "seed", "stop"):
            value = getattr(p, key)
            if value is not None:
                body[key] = value
        if p.n > 1:
            body["n"] = p.n
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(p.extra_body)
        return body

    def parser(self, record: PerfRecord, request: GenerationRequest) -> SSEParser:
        return ChoicesParser(record, False)

    def output(self, data: dict) -> tuple[str | None, str | None, dict | None]:
        """(text, reasoning, usage in chat names) of a whole response body."""
        raise NotImplementedError

    def whole(self, state: SSEParser, body: bytes, now: float) -> None:
        """A non-streamed response: one chunk at ``now`` with all its text."""
        text, reasoning, usage = self.output(_json_object(body, "response"))
        record = state.record
        if text or reasoning:
            record.chunk_times.append(now)
            record.chunk_texts.append((reasoning or "") + (text or ""))
            record.first_token = now
            record.first_content = now if text else None
        state.usage = usage
        state.usage_per_chunk = False
        state.done = True  # a complete JSON body is a complete response

    def complete(self, state: SSEParser, count_tokens: Callable[[str], int | None]) -> None:
        """A stream is complete at its end marker; then the server's usage counts the tokens
        (else ``count_tokens``, the backend's tokenizer, else one token per chunk)."""
        record = state.record
        if not state.done:
            if not state.finished:
                record.fail("protocol", state.TRUNCATED, "truncated stream")
                return
            if self.require_done:
                record.fail("protocol", "no [DONE]: the stream ended after its finish_reason without data: [DONE] "
                                        "(pass --no-require-done if this server never sends it)", "no [DONE]")
                return
        if not record.chunk_times:
            record.fail("empty", "empty response: no content or reasoning text", "empty response")
            return
        record.output_text = "".join(record.chunk_texts)
        usage = state.usage
        if usage and usage.get("completion_tokens") is not None:
            record.completion_tokens = int(usage["completion_tokens"])
            pt = usage.get("prompt_tokens")
            record.prompt_tokens = int(pt) if pt is not None else None
            details = usage.get("prompt_tokens_details")
            if details:  # prefix-cache hits (OpenAI; vLLM --enable-prompt-tokens-details)
                cached = details.get("cached_tokens")
                record.cached_tokens = int(cached) if cached is not None else None
            record.usage_source = "server"
            cu = state.chunk_usage
            if state.usage_per_chunk and len(cu) == len(record.chunk_times) and cu[-1] == record.completion_tokens:
                record.chunk_tokens = [cu[0]] + [cu[i] - cu[i - 1] for i in range(1, len(cu))]
        else:
            counted = count_tokens(record.output_text)
            if counted is not None:
                record.completion_tokens = counted
                record.usage_source = "tokenizer"
            else:
                record.completion_tokens = len(record.chunk_times)
                record.usage_source = "chunks"
        record.success = True

    def completion(self, choice: Any) -> Completion:
        if not isinstance(choice, dict):
            raise BackendError("malformed response: a choice is not an object", retryable=True)
        text, reasoning = self.choice_text(choice)
        return Completion(text=text or "", reasoning=reasoning or None, finish_reason=choice.get("finish_reason"))

    def choice_text(self, choice: dict) -> tuple[str | None, str | None]:
        return choice.get("text"), None


class Chat(TextKind):
    """``/chat/completions``: ``messages`` (a prompt becomes one user message)."""

    name = "chat"
    aliases = ("chat_completions",)
    path = "/chat/completions"
    serves_eval = True
    takes_images = True

    def body(self, request: GenerationRequest, stream: bool = False) -> dict[str, Any]:
        messages = request.messages
        if messages is None:
            messages = [{"role": "user", "content": request.prompt or ""}]
        return self._sampling({"model": self.model, "messages": messages}, request, stream)

    def parser(self, record: PerfRecord, request: GenerationRequest) -> SSEParser:
        return ChoicesParser(record, True)

    def output(self, data: dict) -> tuple[str | None, str | None, dict | None]:
        msg = ((data.get("choices") or [{}])[0]).get("message") or {}
        return msg.get("content"), msg.get("reasoning_content") or msg.get("reasoning"), data.get("usage")

    def choice_text(self, choice: dict) -> tuple[str | None, str | None]:
        msg = choice.get("message") or {}
        return msg.get("content"), msg.get("reasoning_content") or msg.get("reasoning")


class Completions(TextKind):
    """``/completions``: a plain-text ``prompt``."""

    name = "completions"
    path = "/completions"
    serves_eval = True

    def body(self, request: GenerationRequest, stream: bool = False) -> dict[str, Any]:
        if request.prompt is None:
            raise ConfigError("the completions API needs plain-text prompts",
                              "use a /v1/chat/completions URL (or --api chat) for chat-message data")
        return self._sampling({"model": self.model, "prompt": request.prompt}, request, stream)

    def output(self, data: dict) -> tuple[str | None, str | None, dict | None]:
        return ((data.get("choices") or [{}])[0]).get("text"), None, data.get("usage")


class Responses(TextKind):
    """``/responses`` (the Responses API): ``input`` items, ``max_output_tokens``; typed stream
    events (:class:`ResponsesParser`); a whole answer's ``output`` message and reasoning items."""

    name = "responses"
    aliases = ("openai_responses", "openai_response")
    path = "/responses"
    takes_images = True

    def body(self, request: GenerationRequest, stream: bool = False) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {"model": self.model,
                                "input": (request.prompt or "") if request.messages is None
                                else responses_input(request.messages)}
        if p.max_tokens is not None:  # the Responses API knows no seed, stop or n
            body["max_output_tokens"] = p.max_tokens
        for key in ("temperature", "top_p"):
            if getattr(p, key) is not None:
                body[key] = getattr(p, key)
        if stream:
            body["stream"] = True
        body.update(p.extra_body)
        return body

    def parser(self, record: PerfRecord, request: GenerationRequest) -> SSEParser:
        return ResponsesParser(record)

    def output(self, data: dict) -> tuple[str | None, str | None, dict | None]:
        """Its ``message`` items' ``output_text`` parts, its ``reasoning`` items' text and summaries."""
        text: list[str] = []
        reasoning: list[str] = []
        for item in data.get("output") or ():
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                text += [p.get("text") or "" for p in item.get("content") or ()
                         if isinstance(p, dict) and p.get("type") in ("output_text", "refusal")]
            elif item.get("type") == "reasoning":
                reasoning += [p.get("text") or "" for p in [*(item.get("content") or ()), *(item.get("summary") or ())]
                              if isinstance(p, dict)]
        usage = data.get("usage")
        return "".join(text), "".join(reasoning), _chat_usage(usage) if usage else None


def responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as Responses API input items: content parts become ``input_text`` /
    ``input_image`` parts (assistant text becomes ``output_text``); text content stays text."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            text_type = "output_text" if m.get("role") == "assistant" else "input_text"
            parts = []
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    parts.append({"type": text_type, "text": part.get("text", "")})
                elif kind == "image_url":
                    url = part.get("image_url")
                    parts.append({"type": "input_image", "image_url": url.get("url") if isinstance(url, dict) else url})
                else:
                    parts.append(part)
            content = parts
        out.append({"role": m.get("role", "user"), "content": content})
    return out


class Answer:
    """The state of one request to a kind that answers with one JSON body."""

    __slots__ = ("record", "request", "tokens")

    def __init__(self, record: PerfRecord, request: GenerationRequest):
        self.record = record
        self.request = request
        self.tokens: int | None = None  # input tokens, from the server's usage


class PoolingKind(EndpointKind):
    """A kind that answers with one JSON body of vectors or scores (never streamed): the
    request succeeds when the body holds what was asked for; input tokens come from the
    server's usage (``prompt_tokens``, else ``total_tokens``), else the tokenizer's count of
    what was sent. Sampling parameters mean nothing here; ``--extra-args`` fields are sent."""

    generates_text = False
    streams = False
    counts = "documents"

    def body(self, request: GenerationRequest, stream: bool = False) -> dict[str, Any]:
        body = {"model": self.model, **self.fields(request)}
        body.update({k: v for k, v in request.params.extra_body.items() if k not in ("min_tokens", "ignore_eos")})
        return body

    def fields(self, request: GenerationRequest) -> dict[str, Any]:
        """The kind's own fields of the body."""
        raise NotImplementedError

    def _documents(self, request: GenerationRequest) -> list[str]:
        if request.documents is None:
            raise ConfigError(f"the {self.name} API needs a query and documents, and this dataset sends prompts",
                              "use --dataset random_rerank (--rerank-documents N, --rerank-query-length, "
                              "--rerank-document-length)")
        return request.documents

    def parser(self, record: PerfRecord, request: GenerationRequest) -> Answer:
        return Answer(record, request)

    def whole(self, state: Answer, body: bytes, now: float) -> None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FailedRequest("protocol", "malformed response: the body is not JSON", "malformed response") from None
        if not isinstance(data, dict):
            raise FailedRequest("protocol", "malformed response: not a JSON object", "malformed response")
        if data.get("error"):
            raise FailedRequest("server_error", f"error response: {error_text(body)}", "error response")
        self.check_answer(state.record, state.request, data)
        usage = data.get("usage")
        tokens = (usage.get("prompt_tokens") or usage.get("total_tokens")) if isinstance(usage, dict) else None
        state.tokens = int(tokens) if tokens is not None else None

    def check_answer(self, record: PerfRecord, request: GenerationRequest, data: dict) -> None:
        """Set ``record.inputs`` (and the like) from a body; raise FailedRequest when it is
        not the answer to ``request``."""
        raise NotImplementedError

    def complete(self, state: Answer, count_tokens: Callable[[str], int | None]) -> None:
        record = state.record
        if state.tokens is not None:
            record.prompt_tokens = state.tokens
            record.usage_source = "server"
        else:  # counted now, off the clock (record.end is taken)
            counts = [count_tokens(t) for t in state.request.input_texts()]
            record.prompt_tokens = sum(counts) if counts and None not in counts else None  # type: ignore[arg-type]
            record.usage_source = "tokenizer" if record.prompt_tokens is not None else "none"
        record.success = True


class Embeddings(PoolingKind):
    """``/embeddings``: ``input`` (a list of texts) → one vector per input, all of one length
    (``--embedding-dim`` when given); float lists or base64 float32 strings."""

    name = "embeddings"
    aliases = ("embedding", "openai_embedding")
    path = "/embeddings"
    counts = "inputs"

    def __init__(self, model: str, options: Mapping[str, Any] | None = None):
        super().__init__(model, options)
        self.embedding_dim: int | None = self.options.get("embedding_dim")

    def fields(self, request: GenerationRequest) -> dict[str, Any]:
        return {"input": request.inputs if request.inputs is not None else request.input_texts()}

    def check_answer(self, record: PerfRecord, request: GenerationRequest, data: dict) -> None:
        record.inputs = len(request.inputs) if request.inputs is not None else 1
        record.embedding_dim = self.vector_length(data.get("data"), record.inputs)

    def vector_length(self, items: Any, inputs: int) -> int:
        """The length of every vector in an embeddings ``data`` list."""
        def wrong(message: str, group: str = "wrong embeddings") -> FailedRequest:
            return FailedRequest("invalid", f"{group}: {message}", group)

        if not isinstance(items, list) or len(items) != inputs:
            got = len(items) if isinstance(items, list) else "no"
            raise wrong(f"{got} vectors for {inputs} inputs")
        dim = None
        for i, item in enumerate(items):
            vec = item.get("embedding") if isinstance(item, dict) else None
            if isinstance(vec, str):
                try:
                    size = len(base64.b64decode(vec, validate=True))
                except ValueError:
                    raise wrong(f"vector {i} is neither a list of numbers nor base64") from None
                if size % 4:
                    raise wrong(f"vector {i} is {size} base64 bytes, not float32 numbers")
                length = size // 4
            elif isinstance(vec, list):
                try:
                    sum(vec)  # TypeError for anything that is not a number
                except TypeError:
                    raise wrong(f"vector {i} holds something that is not a number") from None
                length = len(vec)
            else:
                raise wrong(f"item {i} has no embedding vector")
            if dim is None:
                dim = length
            elif length != dim:
                raise wrong(f"vectors of {dim} and {length} numbers in one response")
        if not dim:
            raise wrong("empty vectors")
        if self.embedding_dim and dim != self.embedding_dim:
            raise wrong(f"{dim} numbers, --embedding-dim {self.embedding_dim} expected", "wrong embedding size")
        return dim


class Rerank(PoolingKind):
    """``/rerank`` (vLLM's): ``query`` and ``documents`` → ``results[].relevance_score`` with
    valid ``index``es, ``top_n`` of them when fewer are asked for."""

    name = "rerank"
    aliases = ("reranks", "openai_rerank")
    path = "/rerank"
    #: where the answer holds its scores: (list key, score field)
    scores_at = ("results", "relevance_score")

    def fields(self, request: GenerationRequest) -> dict[str, Any]:
        documents = self._documents(request)
        return {"query": request.query or "", "documents": documents}

    def expected(self, request: GenerationRequest, documents: int) -> int:
        top_n = request.params.extra_body.get("top_n")
        return min(documents, int(top_n)) if top_n else documents

    def check_answer(self, record: PerfRecord, request: GenerationRequest, data: dict) -> None:
        documents = record.inputs = len(request.documents or ())
        key, field = self.scores_at
        items = data.get(key)
        expect = self.expected(request, documents)
        if not isinstance(items, list) or len(items) != expect:
            got = len(items) if isinstance(items, list) else "no"
            raise FailedRequest("invalid", f"wrong scores: {got} {key} for {expect} documents", "wrong scores")
        for i, item in enumerate(items):
            value = item.get(field) if isinstance(item, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise FailedRequest("invalid", f"wrong scores: {key}[{i}] has no numeric {field}", "wrong scores")
            index = item.get("index", i)
            if not isinstance(index, int) or not 0 <= index < documents:
                raise FailedRequest("invalid", f"wrong scores: {key}[{i}] has index {index!r} for {documents} "
                                               "documents", "wrong scores")


class Score(Rerank):
    """``/score`` (vLLM's): ``text_1`` = the query, ``text_2`` = the documents → ``data[].score``,
    one per document."""

    name = "score"
    aliases = ()
    path = "/score"
    scores_at = ("data", "score")

    def fields(self, request: GenerationRequest) -> dict[str, Any]:
        documents = self._documents(request)
        return {"text_1": request.query or "", "text_2": documents}

    def expected(self, request: GenerationRequest, documents: int) -> int:
        return documents


#: every endpoint kind, by name: the one table to add a kind to (order: how ``--api`` lists them)
KINDS: dict[str, type[EndpointKind]] = {k.name: k for k in (Chat, Completions, Embeddings, Rerank, Score, Responses)}
#: the kind of a base URL given without ``--api``
DEFAULT_KIND = "chat"
#: EvalScope's ``--api openai``: follow the URL's path (``DEFAULT_KIND`` when it names no endpoint)
FOLLOW_URL = ("openai",)


def api_kind(api: str | None) -> str | None:
    """The endpoint kind an ``--api`` value names (None: follow the URL); one line listing
    the kinds for an unknown value."""
    if api is None:
        return None
    key = str(api).strip().lower().replace("-", "_")
    if key in FOLLOW_URL:
        return None
    for kind in KINDS.values():
        if key == kind.name or key in kind.aliases:
            return kind.name
    raise ConfigError(f"unknown --api {api!r}",
                      f"use one of {', '.join(KINDS)} (EvalScope's openai, embedding, rerank, "
                      "openai_responses also work), or leave it out to follow the --url path")


def url_kind(path: str) -> str | None:
    """The endpoint kind a URL path ends in, if any (``/v1/chat/completions`` → chat; the
    longest matching path wins, so chat's is not read as completions')."""
    for kind in sorted(KINDS.values(), key=lambda k: -len(k.path)):
        if path.endswith(kind.path):
            return kind.name
    return None
