"""The openai backend's endpoint kinds (plugins/backends/lmgauge_backends/endpoint_kinds.py): the
table, each kind's request bodies, how each reads real SSE bytes and whole bodies, and the typed
failure kinds and groups of every failure path, against the real test servers
(tests/perf_server.py, tests/endpoint_server.py: their own processes on 127.0.0.1)."""
from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys

import orjson
import pytest

from conftest import REPO
from test_backend_lmdeploy import _backend, _req, _run, standin  # noqa: F401 - the lmdeploy stand-in and helpers

from lmgauge.plugin import (FAILURE_KINDS, BackendConfig, ConfigError, GenerationParams, GenerationRequest,
                            PerfRecord)
from lmgauge_backends import endpoint_kinds as ek
from lmgauge_backends.openai_backend import OpenAIBackend
from lmgauge_backends.openai_http import split_url

TEXT_KINDS = {"chat": True, "completions": True, "responses": True,
              "embeddings": False, "rerank": False, "score": False}


def backend_for(url: str, api: str | None = None, **options) -> OpenAIBackend:
    return OpenAIBackend(BackendConfig(model="m", base_url=url, api=api, read_timeout=options.pop("read_timeout", 600.0),
                                       options={"require_done": True, **options}))


def kind(name: str, **options) -> ek.EndpointKind:
    return ek.KINDS[name]("m", {"require_done": True, **options})


# -- the table -------------------------------------------------------------------------------
def test_every_kind_is_declared_once():
    assert list(ek.KINDS) == ["chat", "completions", "embeddings", "rerank", "score", "responses"]
    names = [n for k in ek.KINDS.values() for n in (k.name, *k.aliases)]
    assert len(names) == len(set(names))
    assert len({k.path for k in ek.KINDS.values()}) == len(ek.KINDS)
    for name, k in ek.KINDS.items():
        assert k.name == name and k.path.startswith("/")
        assert k.generates_text is TEXT_KINDS[name] and k.streams is TEXT_KINDS[name]
        assert (k.counts is None) is k.generates_text
    assert [n for n, k in ek.KINDS.items() if k.serves_eval] == ["chat", "completions"]
    assert [n for n, k in ek.KINDS.items() if k.takes_images] == ["chat", "responses"]


@pytest.mark.parametrize("api, want", [
    ("chat", "chat"), ("chat_completions", "chat"), ("Chat-Completions", "chat"), ("completions", "completions"),
    ("embeddings", "embeddings"), ("embedding", "embeddings"), ("openai_embedding", "embeddings"),
    ("rerank", "rerank"), ("reranks", "rerank"), ("openai_rerank", "rerank"), ("score", "score"),
    ("responses", "responses"), ("openai_responses", "responses"), ("openai_response", "responses"),
    ("openai", None), (None, None)])
def test_api_names_and_evalscopes(api, want):
    assert ek.api_kind(api) == want


def test_unknown_api_lists_the_kinds():
    with pytest.raises(ConfigError, match="unknown --api 'dashscope'") as info:
        ek.api_kind("dashscope")
    assert "use one of chat, completions, embeddings, rerank, score, responses" in info.value.hint


@pytest.mark.parametrize("name", list(ek.KINDS))
def test_the_backend_takes_its_kind_and_what_it_measures_from_the_url(name):
    path = ek.KINDS[name].path
    b = backend_for("http://127.0.0.1:9/v1" + path)
    assert (b.api, b.url, type(b.kind)) == (name, "http://127.0.0.1:9/v1" + path, ek.KINDS[name])
    assert b.generates_text is TEXT_KINDS[name]
    b2 = backend_for("http://127.0.0.1:9/v1", api=name)
    assert (b2.api, b2.url, b2.generates_text) == (name, "http://127.0.0.1:9/v1" + path, TEXT_KINDS[name])
    assert ek.url_kind("/v1" + path) == name


def test_url_kind_longest_path_wins_and_eval_kinds_follow_the_path():
    assert ek.url_kind("/v1/chat/completions") == "chat" and ek.url_kind("/v1/completions") == "completions"
    assert ek.url_kind("/v1") is None and ek.url_kind("/v1/models") is None
    # eval passes its default api=chat with any URL: the path wins for the eval kinds
    assert split_url("http://h:1/v1/completions", "chat")[2] == "completions"
    with pytest.raises(ConfigError, match="does not match the URL"):
        split_url("http://h:1/v1/chat/completions", "rerank")


# -- request bodies --------------------------------------------------------------------------
PARAMS = GenerationParams(max_tokens=7, temperature=0.5, top_p=0.9, seed=3, stop=["\n"],
                          extra_body={"min_tokens": 7, "ignore_eos": True, "top_k": 5})
MESSAGES = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a square"}]}]


def test_chat_bodies_eval_and_perf():
    chat = kind("chat")
    eval_body = chat.body(GenerationRequest(prompt="hi", params=GenerationParams(max_tokens=5, n=3)))
    assert eval_body == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "n": 3}
    perf_body = chat.body(GenerationRequest(messages=MESSAGES, params=PARAMS), stream=True)
    assert perf_body == {"model": "m", "messages": MESSAGES, "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
                         "seed": 3, "stop": ["\n"], "stream": True, "stream_options": {"include_usage": True},
                         "min_tokens": 7, "ignore_eos": True, "top_k": 5}
    assert "stream" not in chat.body(GenerationRequest(messages=MESSAGES, params=PARAMS), stream=False)


def test_completions_bodies_and_refusal_of_messages():
    comp = kind("completions")
    assert comp.body(GenerationRequest(prompt="2+2=", params=GenerationParams(max_tokens=1)), stream=True) == {
        "model": "m", "prompt": "2+2=", "max_tokens": 1, "stream": True, "stream_options": {"include_usage": True}}
    with pytest.raises(ConfigError, match="the completions API needs plain-text prompts"):
        comp.body(GenerationRequest(messages=MESSAGES))
    with pytest.raises(ConfigError, match="requests with images need a chat or responses endpoint, not completions"):
        comp.check(GenerationRequest(prompt="x", images=[(8, 8)]))
    kind("chat").check(GenerationRequest(messages=MESSAGES, images=[(8, 8)]))


def test_responses_bodies():
    resp = kind("responses")
    body = resp.body(GenerationRequest(messages=MESSAGES, params=PARAMS), stream=True)
    assert body == {"model": "m", "max_output_tokens": 7, "temperature": 0.5, "top_p": 0.9, "stream": True,
                    "min_tokens": 7, "ignore_eos": True, "top_k": 5,
                    "input": [{"role": "system", "content": "be brief"},
                              {"role": "user", "content": [{"type": "input_text", "text": "what is this?"},
                                                           {"type": "input_image",
                                                            "image_url": "data:image/png;base64,AAAA"}]},
                              {"role": "assistant", "content": [{"type": "output_text", "text": "a square"}]}]}
    assert resp.body(GenerationRequest(prompt="hello"), stream=False) == {"model": "m", "input": "hello"}


def test_pooling_bodies():
    extra = GenerationParams(max_tokens=9, temperature=1.0, extra_body={"min_tokens": 3, "ignore_eos": True,
                                                                         "top_n": 2, "encoding_format": "base64"})
    emb = kind("embeddings")
    assert emb.body(GenerationRequest(inputs=["a", "b"], params=extra)) == {
        "model": "m", "input": ["a", "b"], "top_n": 2, "encoding_format": "base64"}
    assert emb.body(GenerationRequest(prompt="one text"), stream=True) == {"model": "m", "input": ["one text"]}
    docs = GenerationRequest(query="q", documents=["d1", "d2"])
    assert kind("rerank").body(docs) == {"model": "m", "query": "q", "documents": ["d1", "d2"]}
    assert kind("score").body(docs) == {"model": "m", "text_1": "q", "text_2": ["d1", "d2"]}
    for name in ("rerank", "score"):
        with pytest.raises(ConfigError, match=f"the {name} API needs a query and documents"):
            kind(name).body(GenerationRequest(prompt="hello"))


# -- parsing real SSE bytes -------------------------------------------------------------------
def sse(events: list, crlf: bool = False, done: bool = True) -> bytes:
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    out = [b": keep-alive" + sep]
    for e in events:
        if isinstance(e, tuple):  # (event name, data): Responses API typed events
            out.append(b"event: " + e[0].encode() + (b"\r\n" if crlf else b"\n") + b"data: " + orjson.dumps(e[1]) + sep)
        else:
            out.append(b"data: " + orjson.dumps(e) + sep)
    if done:
        out.append(b"data: [DONE]" + sep)
    return b"".join(out)


def feed(k: ek.EndpointKind, body: bytes, cuts: list[int]):
    """Feed ``body`` to a fresh parser of ``k`` in the pieces ``cuts`` make, read k stamped k."""
    rec = PerfRecord()
    state = k.parser(rec, GenerationRequest(prompt="x"))
    buf, last = b"", 0
    for i, cut in enumerate(sorted(set(cuts)) + [len(body)]):
        piece, last = body[last:cut], cut
        if piece:
            buf = buf + piece if buf else piece
            buf = buf[state.feed(buf, float(i)):]
    if buf:
        state.feed(buf + b"\n", 99.0)
    state.finish(99.0)
    return rec, state


def same_however_cut(k, body):
    whole, state = feed(k, body, [])
    rng = random.Random(7)
    for _ in range(100):
        rec, st = feed(k, body, rng.sample(range(1, len(body)), rng.randint(1, 30)))
        assert (rec.chunk_texts, st.done, st.finished, st.usage) == (whole.chunk_texts, state.done, state.finished,
                                                                      state.usage)
        assert rec.chunk_times == sorted(rec.chunk_times)
    return whole, state


@pytest.mark.parametrize("crlf", [False, True])
def test_chat_stream_reasoning_content_and_continuous_usage(crlf):
    events = [{"choices": [{"index": 0, "delta": {"reasoning_content": " think"}}], "usage": {"completion_tokens": 1}},
              {"choices": [{"index": 0, "delta": {"content": " a"}}], "usage": {"completion_tokens": 3}},
              {"choices": [{"index": 0, "delta": {"content": " b"}, "finish_reason": "stop"}],
               "usage": {"completion_tokens": 4}},
              {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4,
                                        "prompt_tokens_details": {"cached_tokens": 2}}}]
    chat = kind("chat")
    rec, state = same_however_cut(chat, sse(events, crlf))
    assert rec.chunk_texts == [" think", " a", " b"] and state.done and state.finished
    assert rec.first_token == rec.chunk_times[0] and rec.first_content == rec.chunk_times[1]
    chat.complete(state, lambda text: None)
    assert rec.success and rec.failure_kind is None and rec.output_text == " think a b"
    assert (rec.completion_tokens, rec.prompt_tokens, rec.cached_tokens, rec.usage_source) == (4, 5, 2, "server")
    assert rec.chunk_tokens == [1, 2, 1]  # from the running usage of each chunk


def test_completions_stream_without_usage_counts_with_the_tokenizer_or_chunks():
    events = [{"choices": [{"index": 0, "text": " one"}]}, {"choices": [{"index": 0, "text": " two three"}]},
              {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}]
    comp = kind("completions")
    rec, state = same_however_cut(comp, sse(events))
    comp.complete(state, lambda text: len(text.split()))
    assert rec.success and rec.output_text == " one two three"
    assert (rec.completion_tokens, rec.usage_source, rec.chunk_tokens) == (3, "tokenizer", [])
    rec2, state2 = feed(comp, sse(events), [])
    comp.complete(state2, lambda text: None)
    assert (rec2.completion_tokens, rec2.usage_source) == (2, "chunks")


def test_responses_stream_typed_events():
    events = [("response.created", {"type": "response.created", "response": {"id": "r"}}),
              ("response.reasoning_text.delta", {"type": "response.reasoning_text.delta", "delta": " hmm"}),
              ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta", "delta": "!"}),
              ("response.output_text.delta", {"type": "response.output_text.delta", "delta": " yes"}),
              ("response.output_text.delta", {"type": "response.output_text.delta", "delta": ""}),
              ("response.refusal.delta", {"type": "response.refusal.delta", "delta": " no"}),
              ("response.completed", {"type": "response.completed", "response": {"usage": {
                  "input_tokens": 4, "output_tokens": 6, "input_tokens_details": {"cached_tokens": 1}}}})]
    resp = kind("responses")
    rec, state = same_however_cut(resp, sse(events, done=False))
    assert rec.chunk_texts == [" hmm", "!", " yes", " no"] and state.done and state.finished
    assert rec.first_token == rec.chunk_times[0] and rec.first_content == rec.chunk_times[2]
    resp.complete(state, lambda text: None)
    assert rec.success and (rec.completion_tokens, rec.prompt_tokens, rec.cached_tokens) == (6, 4, 1)
    # response.incomplete (max_output_tokens reached) ends a stream too
    rec2, state2 = feed(resp, sse([events[3][1], {"type": "response.incomplete", "response": {}}], done=False), [])
    resp.complete(state2, lambda text: 1)
    assert rec2.success and rec2.usage_source == "tokenizer"


def test_whole_bodies_of_the_text_kinds():
    cases = {
        "chat": {"choices": [{"message": {"content": " a b", "reasoning_content": " r"}}],
                 "usage": {"prompt_tokens": 2, "completion_tokens": 3}},
        "completions": {"choices": [{"text": " a b"}], "usage": {"prompt_tokens": 2, "completion_tokens": 3}},
        "responses": {"output": [{"type": "reasoning", "content": [{"type": "reasoning_text", "text": " r"}],
                                  "summary": []},
                                 {"type": "message", "content": [{"type": "output_text", "text": " a b"}]}],
                      "usage": {"input_tokens": 2, "output_tokens": 3}},
    }
    for name, body in cases.items():
        k = kind(name)
        rec = PerfRecord()
        state = k.parser(rec, GenerationRequest(prompt="x"))
        k.whole(state, orjson.dumps(body), 5.0)
        k.complete(state, lambda text: None)
        assert rec.success, name
        assert rec.chunk_times == [5.0] and rec.first_token == rec.first_content == 5.0
        assert (rec.completion_tokens, rec.prompt_tokens) == (3, 2)
        assert rec.output_text == ("" if name == "completions" else " r") + " a b"


def test_eval_completions_of_chat_and_completions():
    c = kind("chat").completion({"message": {"content": "4", "reasoning": "2+2"}, "finish_reason": "stop"})
    assert (c.text, c.reasoning, c.finish_reason) == ("4", "2+2", "stop")
    c = kind("completions").completion({"text": " 4", "finish_reason": "length"})
    assert (c.text, c.reasoning, c.finish_reason) == (" 4", None, "length")


def test_pooling_whole_bodies():
    emb = kind("embeddings", embedding_dim=3)
    rec = PerfRecord()
    req = GenerationRequest(inputs=["a b", "c"])
    state = emb.parser(rec, req)
    emb.whole(state, orjson.dumps({"data": [{"embedding": [0.1, 0.2, 0.3]}, {"embedding": [1, 2, 3]}],
                                   "usage": {"prompt_tokens": 3}}), 1.0)
    emb.complete(state, lambda t: 100)
    assert rec.success and (rec.inputs, rec.embedding_dim, rec.prompt_tokens, rec.usage_source) == (2, 3, 3, "server")
    assert rec.chunk_times == [] and rec.first_token is None
    # base64 float32 vectors, no usage: the tokenizer counts what was sent
    import base64
    import struct

    b64 = base64.b64encode(struct.pack("<3f", 1, 2, 3)).decode()
    rec = PerfRecord()
    state = emb.parser(rec, req)
    emb.whole(state, orjson.dumps({"data": [{"embedding": b64}, {"embedding": b64}]}), 1.0)
    emb.complete(state, lambda t: len(t.split()))
    assert rec.success and (rec.embedding_dim, rec.prompt_tokens, rec.usage_source) == (3, 3, "tokenizer")
    rerank = kind("rerank")
    rec = PerfRecord()
    state = rerank.parser(rec, GenerationRequest(query="q", documents=["x", "y", "z"],
                                                 params=GenerationParams(extra_body={"top_n": 2})))
    rerank.whole(state, orjson.dumps({"results": [{"index": 2, "relevance_score": 0.9},
                                                  {"index": 0, "relevance_score": 0.1}], "usage": {"total_tokens": 7}}), 1)
    rerank.complete(state, lambda t: None)
    assert rec.success and (rec.inputs, rec.prompt_tokens) == (3, 7)


@pytest.mark.parametrize("name, request_, body, kind_, group, message", [
    ("embeddings", GenerationRequest(inputs=["a", "b"]), {"data": [{"embedding": [1]}]},
     "invalid", "wrong embeddings", "wrong embeddings: 1 vectors for 2 inputs"),
    ("embeddings", GenerationRequest(inputs=["a"]), {"data": [{"embedding": [1, 2]}]},
     "invalid", "wrong embedding size", "wrong embedding size: 2 numbers, --embedding-dim 4 expected"),
    ("embeddings", GenerationRequest(inputs=["a"]), {"data": [{"embedding": "abc"}]},
     "invalid", "wrong embeddings", "wrong embeddings: vector 0 is neither a list of numbers nor base64"),
    ("rerank", GenerationRequest(query="q", documents=["x"]), {"results": [{"index": 5, "relevance_score": 1}]},
     "invalid", "wrong scores", "wrong scores: results[0] has index 5 for 1 documents"),
    ("score", GenerationRequest(query="q", documents=["x"]), {"data": [{"score": True}]},
     "invalid", "wrong scores", "wrong scores: data[0] has no numeric score"),
    ("score", GenerationRequest(query="q", documents=["x"]), [1],
     "protocol", "malformed response", "malformed response: not a JSON object"),
    ("rerank", GenerationRequest(query="q", documents=["x"]), {"error": {"message": "overloaded"}},
     "server_error", "error response", "error response: overloaded"),
])
def test_pooling_answers_that_are_not_answers_fail_typed(name, request_, body, kind_, group, message):
    k = kind(name, embedding_dim=4 if "size" in group else None)
    with pytest.raises(ek.FailedRequest) as info:
        k.whole(k.parser(PerfRecord(), request_), orjson.dumps(body), 1.0)
    assert (info.value.kind, info.value.group, info.value.message) == (kind_, group, message)
    assert info.value.kind in FAILURE_KINDS


def test_malformed_events_fail_typed():
    for name, data, kind_ in (("chat", b"data: [1, 2]\n\n", "protocol"),
                              ("chat", b'data: {"error": {"message": "out of memory"}}\n\n', "server_error"),
                              ("responses", b'data: {"type": "error", "message": "rate limited"}\n\n', "server_error"),
                              ("responses", b'data: {"type": "response.failed", "response": {"error": '
                                            b'{"message": "crashed"}}}\n\n', "server_error")):
        with pytest.raises(ek.FailedRequest) as info:
            kind(name).parser(PerfRecord(), GenerationRequest(prompt="x")).feed(data, 1.0)
        assert info.value.kind == kind_
        assert info.value.group == ("malformed SSE" if kind_ == "protocol" else None)  # error events: by their text
    with pytest.raises(orjson.JSONDecodeError):
        kind("chat").parser(PerfRecord(), GenerationRequest(prompt="x")).feed(b'data: {"choices": [\n\n', 1.0)


def test_incomplete_streams_fail_typed():
    chat = kind("chat")
    cut = sse([{"choices": [{"delta": {"content": " a"}}]}], done=False)
    rec, state = feed(chat, cut, [])
    chat.complete(state, lambda t: None)
    assert (rec.success, rec.failure_kind, rec.failure_group) == (False, "protocol", "truncated stream")
    nodone = sse([{"choices": [{"delta": {"content": " a"}, "finish_reason": "stop"}]}], done=False)
    rec, state = feed(chat, nodone, [])
    chat.complete(state, lambda t: None)
    assert (rec.failure_kind, rec.failure_group) == ("protocol", "no [DONE]") and "--no-require-done" in rec.error
    lenient = kind("chat", require_done=False)
    rec, state = feed(lenient, nodone, [])
    lenient.complete(state, lambda t: None)
    assert rec.success
    rec, state = feed(chat, sse([{"choices": [{"delta": {}, "finish_reason": "stop"}]}]), [])
    chat.complete(state, lambda t: None)
    assert (rec.failure_kind, rec.failure_group, rec.error) == (
        "empty", "empty response", "empty response: no content or reasoning text")
    resp = kind("responses")
    rec, state = feed(resp, sse([{"type": "response.output_text.delta", "delta": "x"}], done=False), [])
    resp.complete(state, lambda t: None)
    assert (rec.failure_kind, rec.failure_group, rec.error) == (
        "protocol", "truncated stream", "truncated stream: the body ended before response.completed")


# -- failure kinds and groups against real servers ---------------------------------------------
def start_server(script: str, *args: str):
    p = subprocess.Popen([sys.executable, str(REPO / "tests" / script), "--model", "m", *args], stdout=subprocess.PIPE,
                         text=True)
    port = int(p.stdout.readline().split()[1])
    return p, f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def servers():
    procs = []

    def start(script: str, *args: str) -> str:
        p, base = start_server(script, *args)
        procs.append(p)
        return base

    yield start
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


def stream_all(backend: OpenAIBackend, requests: list[GenerationRequest]) -> list[PerfRecord]:
    async def go():
        try:
            await backend.start()
            records = [PerfRecord(index=i) for i in range(len(requests))]
            await asyncio.gather(*(backend.stream(r, rec) for r, rec in zip(requests, records)))
            return records
        finally:
            await backend.close()

    return asyncio.run(go())


def failures(records: list[PerfRecord]) -> list[tuple]:
    out = []
    for r in records:
        assert r.end >= r.sent > 0
        if r.success:
            assert r.failure_kind is None and r.error is None
            out.append("ok")
        else:
            assert r.failure_kind in FAILURE_KINDS and r.error, r
            out.append((r.failure_kind, r.failure_group, r.error.split(":")[0]))
    return out


def test_chat_stream_failures_against_the_perf_server(servers):
    base = servers("perf_server.py", "--tokens", "6", "--itl", "0.005")
    prompts = ["fine", "FAULT:500", "FAULT:reset", "FAULT:stall", "FAULT:malformed", "FAULT:cut", "FAULT:empty",
               "FAULT:nodone", "FAULT:errchunk", "FAULT:json"]
    records = stream_all(backend_for(base + "/chat/completions", read_timeout=1.0),
                         [GenerationRequest(prompt=p, params=GenerationParams(max_tokens=6)) for p in prompts])
    assert failures(records) == [
        "ok",
        ("http", "HTTP 500", "HTTP 500"),
        ("connection", "connection error (response cut off)", "connection error"),
        ("timeout", "read timeout", "read timeout"),
        ("protocol", "malformed SSE", "malformed SSE"),
        ("protocol", "truncated stream", "truncated stream"),
        ("empty", "empty response", "empty response"),
        ("protocol", "no [DONE]", "no [DONE]"),
        ("server_error", "error event: out of memory", "error event"),
        "ok",  # a JSON body for a stream request still counts
    ]
    assert records[3].error == "read timeout: no data for 1 s"


def test_connection_refused_and_bad_request(servers):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = backend_for(f"http://127.0.0.1:{port}/v1/completions")

    async def go():
        import aiohttp

        b.session = aiohttp.ClientSession()  # no start(): it would refuse a server that is not there
        try:
            records = [PerfRecord(), PerfRecord()]
            await b.stream(GenerationRequest(prompt="hi"), records[0])
            await b.stream(GenerationRequest(messages=[{"role": "user", "content": "hi"}]), records[1])
            return records
        finally:
            await b.session.close()

    refused, bad = asyncio.run(go())
    assert (refused.failure_kind, refused.failure_group) == ("connection", "connection error (ClientConnectorError)")
    assert refused.error.startswith("connection error: ClientConnectorError")
    assert (bad.failure_kind, bad.failure_group) == ("client", bad.error[:80])
    assert bad.error.startswith("bad request: the completions API needs plain-text prompts")


def test_pooling_and_responses_failures_against_the_endpoint_server(servers):
    base = servers("endpoint_server.py", "--dim", "4", "--tokens", "5")
    emb = stream_all(backend_for(base + "/embeddings", embedding_dim=4),
                     [GenerationRequest(inputs=[f"text {i} {f}"]) for i, f in
                      enumerate(["", "FAULT:dim", "FAULT:count", "FAULT:nonnumber", "FAULT:500"])])
    assert failures(emb) == ["ok", ("invalid", "wrong embedding size", "wrong embedding size"),
                             ("invalid", "wrong embeddings", "wrong embeddings"),
                             ("invalid", "wrong embeddings", "wrong embeddings"), ("http", "HTTP 500", "HTTP 500")]
    assert emb[0].inputs == 1 and emb[0].embedding_dim == 4 and emb[0].usage_source == "server"
    rerank = stream_all(backend_for(base, api="rerank"),
                        [GenerationRequest(query="q", documents=["a", "b FAULT:nonnumber"]),
                         GenerationRequest(query="q", documents=["a", "b"])])
    assert failures(rerank) == [("invalid", "wrong scores", "wrong scores"), "ok"]
    score = stream_all(backend_for(base + "/score"), [GenerationRequest(query="q FAULT:count", documents=["a", "b"])])
    assert failures(score) == [("invalid", "wrong scores", "wrong scores")]
    resp = stream_all(backend_for(base + "/responses"),
                      [GenerationRequest(prompt=p) for p in ("fine", "FAULT:failed", "FAULT:error", "FAULT:cut")])
    assert failures(resp) == ["ok", ("server_error", "error event: the model crashed", "error event"),
                              ("server_error", "error event: too many requests", "error event"),
                              ("protocol", "truncated stream", "truncated stream")]
    assert resp[0].completion_tokens == 5 and resp[0].first_content is not None


# -- the in-process backends ----------------------------------------------------------------
def test_in_process_backends_fail_typed(tmp_path):
    from lmgauge_backends.failures import RequestFailed, fail_record
    from lmgauge_backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(BackendConfig(model="smollm2"))
    rec = PerfRecord()
    asyncio.run(backend.stream(GenerationRequest(prompt="hi"), rec))  # not started
    assert (rec.success, rec.failure_kind, rec.failure_group) == (
        False, "client", "the transformers backend is not started (or already closed)")
    rec = PerfRecord()
    fail_record(rec, RequestFailed("server_error", "generation failed", "generation failed: CUDA out of memory",
                                   "lower --batch-size"))
    assert (rec.failure_kind, rec.failure_group, rec.error) == (
        "server_error", "generation failed", "generation failed: CUDA out of memory (lower --batch-size)")
    from lmgauge.plugin import BackendError

    rec = PerfRecord()
    fail_record(rec, BackendError("something else: entirely"))
    assert (rec.failure_kind, rec.failure_group) == ("client", "something else: entirely")


def test_lmdeploy_engine_errors_fail_typed(standin):
    _, model, _ = standin
    backend = _backend(model)
    recs = [PerfRecord(index=i) for i in range(2)]

    async def go():
        await asyncio.gather(backend.stream(_req("What is 2+2?", max_tokens=16), recs[0]),
                             backend.stream(_req("please break"), recs[1]))

    _run(backend, go)
    assert recs[0].success and recs[0].failure_kind is None
    assert (recs[1].failure_kind, recs[1].failure_group, recs[1].error) == (
        "server_error", "lmdeploy error", "lmdeploy error: engine failure")
    rec = PerfRecord()
    asyncio.run(_backend(model).stream(_req("hi"), rec))  # not started
    assert (rec.failure_kind, rec.failure_group) == ("client", "the lmdeploy backend is not started (or already closed)")


# -- adding a kind: one class and one table entry ---------------------------------------------
class Classify(ek.PoolingKind):
    """vLLM's ``/classify``: texts in, class probabilities out (not built in: the test's own)."""

    name = "classify"
    aliases = ("classification",)
    path = "/classify"
    counts = "inputs"

    def fields(self, request):
        return {"input": request.input_texts()}

    def check_answer(self, record, request, data):
        record.inputs = len(request.input_texts())
        items = data.get("data")
        if not isinstance(items, list) or len(items) != record.inputs or not all(
                isinstance(i, dict) and isinstance(i.get("probs"), list) for i in items):
            raise ek.FailedRequest("invalid", f"wrong classes: {len(items or ())} for {record.inputs} inputs",
                                   "wrong classes")


def test_a_new_kind_is_one_class_and_one_table_entry(monkeypatch):
    from aiohttp import web

    monkeypatch.setitem(ek.KINDS, "classify", Classify)
    seen = []

    async def classify(request):
        body = await request.json()
        seen.append((request.path, body))
        n = len(body["input"]) - (1 if "FAULT" in body["input"][0] else 0)
        return web.json_response({"data": [{"index": i, "probs": [0.2, 0.8]} for i in range(n)],
                                  "usage": {"prompt_tokens": 3}})

    async def go():
        app = web.Application()
        app.router.add_post("/v1/classify", classify)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            b = backend_for(f"http://127.0.0.1:{port}/v1", api="classification")
            assert (b.api, b.url.endswith("/v1/classify"), b.generates_text) == ("classify", True, False)
            await b.start()
            try:
                records = [PerfRecord(), PerfRecord()]
                await b.stream(GenerationRequest(prompt="is this spam?"), records[0])
                await b.stream(GenerationRequest(prompt="FAULT here"), records[1])
                return records
            finally:
                await b.close()
        finally:
            await runner.cleanup()

    ok, bad = asyncio.run(go())
    assert ok.success and (ok.inputs, ok.prompt_tokens, ok.usage_source) == (1, 3, "server") and ok.first_token is None
    assert (bad.failure_kind, bad.failure_group, bad.error) == ("invalid", "wrong classes", "wrong classes: 0 for 1 inputs")
    assert seen[0] == ("/v1/classify", {"model": "m", "input": ["is this spam?"]})
    assert ek.url_kind("/v1/classify") == "classify"
