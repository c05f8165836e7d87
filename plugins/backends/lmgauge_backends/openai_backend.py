"""``--backend openai``: any OpenAI-compatible HTTP server (vLLM, SGLang, lmdeploy,
llama.cpp, transformers serve, ...), through aiohttp + orjson.

Eval uses ``generate`` (non-streaming chat or completions requests, ``n`` when the server
supports it); perf uses ``stream`` (the hot path lives in ``openai_stream``), against any
endpoint kind of ``endpoint_kinds.KINDS``: chat, completions, responses (the Responses API),
embeddings, rerank and score (vLLM's). The backend holds one kind object (``self.kind``, from
the URL or ``--api``): it builds the request bodies and reads the answers, and sets
``generates_text``. The API key is sent as ``Authorization: Bearer`` and never logged or
written anywhere.
"""
from __future__ import annotations

import asyncio
from typing import Any

import click
import orjson

from lmgauge.plugin import (Backend, BackendConfig, BackendError, Completion, ConfigError, GenerationRequest,
                            PerfRecord, hookimpl)

from .endpoint_kinds import KINDS, EndpointKind, error_text
from .endpoints import Endpoint, EndpointFailure, EndpointPool
from .openai_http import split_url
from .openai_stream import send_stamp, stream_request


class OpenAIBackend(Backend):
    name = "openai"
    description = ("OpenAI-compatible HTTP server (chat, completions; perf also embeddings, rerank, score, "
                   "responses)")
    default = True
    options = [
        click.Option(["--header", "--headers", "headers"], multiple=True, metavar="K=V",
                     help="Extra HTTP header for every request (repeatable)."),
        click.Option(["--tls-verify/--no-tls-verify", "tls_verify"], default=None,
                     help="Verify the server's TLS certificate (default: verify)."),
        click.Option(["--require-done/--no-require-done", "require_done"], default=True,
                     help="Streams: count a stream that ends after its finish_reason without `data: [DONE]` "
                          "as failed (default), or as complete (for servers that never send [DONE], "
                          "e.g. transformers serve)."),
        click.Option(["--embedding-dim", "embedding_dim"], type=click.IntRange(min=1), default=None,
                     help="Embeddings: the vector length every response must have (a request whose vectors "
                          "differ fails). Default: any length, the same for all inputs of a request."),
    ]

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self.base, self.url, self.api = split_url(config.base_url or "", config.api)
        endpoints = [Endpoint(self.base, self.url)]
        for other in config.endpoints[1:]:
            base, url, api = split_url(other, config.api)
            if url in (ep.url for ep in endpoints):
                raise ConfigError(f"the server URL {url} is given twice", "give each --base-url / --url once")
            if api != self.api:
                raise ConfigError(f"the server URLs name different endpoint kinds: {self.url} ({self.api}) and "
                                  f"{url} ({api})", "give every --base-url / --url the same path")
            endpoints.append(Endpoint(base, url))
        self.pool = EndpointPool(endpoints, self._answers)
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        for item in config.options.get("headers") or ():
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--header expects KEY=VALUE, got {item!r}", "e.g. --header X-Team=eval")
            self.headers[key.strip()] = value.strip()
        if config.api_key:
            self.headers["Authorization"] = f"Bearer {config.api_key}"
        #: the endpoint kind: request bodies, answers, and what is measured
        self.kind: EndpointKind = KINDS[self.api](config.model, config.options)
        self.generates_text = self.kind.generates_text
        self.input_unit = self.kind.counts
        self.session: Any = None
        self._n_checked = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        import aiohttp

        verify = self.config.options.get("tls_verify") is not False
        connector = aiohttp.TCPConnector(limit=0, ssl=None if verify else False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout,
                                        sock_read=self.config.read_timeout)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[send_stamp()],
                                             json_serialize=lambda o: orjson.dumps(o).decode(),
                                             auto_decompress=True)
        await self.check_model()

    async def close(self) -> None:
        await self.pool.close()
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def check_model(self) -> None:
        """Fail early, in one line, when no endpoint can be reached or one lacks the model.
        With several endpoints, those that cannot be reached (or answer HTTP 5xx) while others
        can are parked, with a warning line, and probed until they answer."""
        endpoints = self.pool.endpoints
        results = await asyncio.gather(*(self._check_endpoint(ep) for ep in endpoints), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, EndpointFailure):
                raise result
        down = [(ep, r) for ep, r in zip(endpoints, results) if isinstance(r, EndpointFailure)]
        if len(down) == len(endpoints):
            first = down[0][1].error
            if len(endpoints) == 1:
                raise first
            raise BackendError(f"none of the {len(endpoints)} endpoints answers (first: {first.message})", first.hint)
        for ep, failure in down:
            self.pool.park(ep, f"it did not answer at start ({failure.error.message})")

    async def _check_endpoint(self, ep: Endpoint) -> None:
        """Raise EndpointFailure when ``ep`` cannot be reached or answers HTTP 5xx, BackendError
        when it refuses the key or lacks the model."""
        import aiohttp

        url = ep.base + "/models"
        try:
            async with self.session.get(url, headers=self.headers,
                                        timeout=aiohttp.ClientTimeout(total=max(10.0, self.config.connect_timeout))) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise EndpointFailure(BackendError(
                f"cannot reach the server at {ep.base}: {exc.__class__.__name__} {exc}".strip(),
                "is the server running? check --base-url / --url"), connection=True) from None
        if status in (401, 403):
            raise BackendError(f"the server at {ep.base} refused the API key (HTTP {status})",
                               "pass --api-key or set LMGAUGE_API_KEY / OPENAI_API_KEY")
        if status == 404:
            return  # some servers have no /models; the first request will tell
        if status >= 400:
            error = BackendError(f"GET {url} answered HTTP {status}: {error_text(body)}", "check --base-url / --url")
            if status >= 500:
                raise EndpointFailure(error, connection=False)
            raise error
        try:
            served = [m.get("id") for m in orjson.loads(body).get("data", [])]
        except Exception:  # noqa: BLE001
            return
        if served and self.config.model not in served:
            raise BackendError(f"model {self.config.model!r} is not served at {ep.base}",
                               f"served: {', '.join(map(str, served))}; pass one with --model")

    async def _answers(self, ep: Endpoint) -> bool:
        """The probe of a parked endpoint: does ``GET /models`` get an answer below HTTP 500?"""
        import aiohttp

        try:
            async with self.session.get(ep.base + "/models", headers=self.headers,
                                        timeout=aiohttp.ClientTimeout(total=min(5.0, self.config.connect_timeout))) as resp:
                await resp.read()
                return resp.status < 500
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    def endpoint_stats(self) -> list[dict[str, Any]]:
        return self.pool.stats()

    async def detect_n_support(self) -> bool:
        """Ask for n=2 once with one token; True when the server returns two choices."""
        if self._n_checked:
            return self.supports_n
        self._n_checked = True
        probe = GenerationRequest(messages=[{"role": "user", "content": "Say hi."}],
                                  prompt="Say hi.")
        payload = self.payload(probe)
        payload.update(n=2, max_tokens=1)
        try:
            data = await self._post(payload)
            self.supports_n = len(data.get("choices") or []) == 2
        except BackendError:
            self.supports_n = False
        return self.supports_n

    # -- requests ----------------------------------------------------------------------
    def payload(self, request: GenerationRequest, stream: bool = False) -> dict[str, Any]:
        """The JSON body of a request to this backend's endpoint kind. Raises ConfigError for a
        request the endpoint cannot take (see :meth:`check_request`)."""
        return self.kind.body(request, stream)

    def check_request(self, request: GenerationRequest) -> None:
        """Raise a one-line ConfigError when this endpoint cannot send ``request`` (perf checks
        a dataset's first request before the run)."""
        self.kind.check(request)

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One request, on the endpoint the pool picks (and on others if that one fails)."""
        data = orjson.dumps(payload)
        return await self.pool.call(lambda ep: self._post_to(ep, data))

    async def _post_to(self, ep: Endpoint, data: bytes) -> dict[str, Any]:
        import aiohttp

        try:
            async with self.session.post(ep.url, data=data, headers=self.headers) as resp:
                body = await resp.read()
                status = resp.status
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        except asyncio.TimeoutError as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise EndpointFailure(BackendError(f"connect timeout: no connection within "
                                                   f"{self.config.connect_timeout:g} s", retryable=True),
                                      connection=True) from None
            raise EndpointFailure(BackendError("request timed out", retryable=True), connection=False) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise EndpointFailure(BackendError(f"connection error: {exc.__class__.__name__} {exc}".strip(),
                                               retryable=True), connection=True) from None
        if status >= 400:
            retryable = status in (408, 409, 425, 429) or status >= 500
            error = BackendError(f"HTTP {status}: {error_text(body)}", retryable=retryable, status=status)
            if status >= 500:
                raise EndpointFailure(error, connection=False)
            raise error
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            what = "an empty body" if not body.strip() else f"{ctype or 'a body with no Content-Type'} ({len(body)} bytes)"
            raise BackendError(f"malformed response: the server returned {what}, not JSON",
                               "check --base-url points at the OpenAI-compatible API (…/v1), not a web page",
                               retryable=True) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise BackendError("malformed response: no 'choices' list", retryable=True)
        return data

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        if not self.kind.serves_eval:
            able = " or ".join(k.name for k in KINDS.values() if k.serves_eval)
            raise ConfigError(f"lmgauge eval needs a {able} endpoint, not {self.api} ({self.url})",
                              "pass --base-url http://HOST:PORT/v1 (or the /v1/chat/completions URL)")
        want = max(1, request.params.n)
        if want > 1 and not self.supports_n:
            single = GenerationRequest(request.messages, request.prompt,
                                       _with_n(request.params, 1), request.id)
            out: list[Completion] = []
            for _ in range(want):
                out.extend(await self.generate(single))
            return out
        data = await self._post(self.payload(request))
        completions = [self.kind.completion(choice) for choice in sorted(
            data["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)]
        if not completions:
            raise BackendError("malformed response: empty 'choices'", retryable=True)
        usage = data.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        for c in completions:
            c.prompt_tokens = prompt_tokens
        if len(completions) == 1:
            completions[0].completion_tokens = usage.get("completion_tokens")
        if len(completions) < want:  # server ignored n: fetch the rest one by one
            self.supports_n = False
            rest = GenerationRequest(request.messages, request.prompt,
                                     _with_n(request.params, want - len(completions)), request.id)
            completions.extend(await self.generate(rest))
        return completions[:want]

    async def stream(self, request: GenerationRequest, record: PerfRecord) -> None:
        if len(self.pool.endpoints) == 1:
            await stream_request(self, request, record)
            return
        ep = self.pool.for_index(record.index)  # several --url: request i goes to URL i mod N
        record.endpoint = ep.label
        await stream_request(self, request, record, ep.url)


def _with_n(params, n):
    from dataclasses import replace

    return replace(params, n=n)


@hookimpl
def register_backends(register):
    register(OpenAIBackend)
