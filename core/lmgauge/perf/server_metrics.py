"""The server's own metrics beside the client's: ``--server-metrics [URL]``.

During each perf level a :class:`ServerMetricsScraper` GETs the server's Prometheus text
(default: ``/metrics`` on the host and port of ``--url``) every second, in the same event loop
as the load. On the hot path a scrape is one small GET: the body is stamped with
``perf_counter()`` and kept zlib-compressed; it is parsed (prometheus_client's text parser)
only when the level has ended, off the clock, because parsing a vLLM page costs milliseconds
of CPU that would otherwise delay the timestamps of requests in flight.

A scrape becomes raw samples (name, labels, value) and, where the server is known, a handful of
normalised series (:data:`SERIES`), computed from the metric names of vLLM, SGLang, TGI and
lmdeploy (:data:`CATALOGUE`): requests running and waiting, KV-cache usage (0..1), prefix-cache
hit rate (0..1; from counter deltas between scrapes where the server exports counters),
preemptions per second (counter deltas), speculative-decoding acceptance (0..1) and mean
accepted length (tokens per step). Several engines or models (label sets): request counts and
preemptions are summed, ratios are the mean over engines, or for counter-based ones the ratio of
summed deltas. An unknown server keeps its raw series only.

Nothing here raises into a run: an HTTP error, a timeout or a page that is not Prometheus text
is counted, and :meth:`ScrapeResult.warning` gives one line for the whole level.

Stored in perf.sqlite (:func:`store`): ``server_metrics`` (raw: every numeric sample except
histogram buckets and ``_created`` timestamps; counters named as the parser names them, ending
in ``_total``) and ``server_series`` (normalised); ``t_s`` counts from the level's clock origin,
like the ``requests`` table's times.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import orjson

from ..errors import ConfigError
from ..redaction import redact_text

METRICS_PATH = "/metrics"
MAX_BODY = 32 * 1024 * 1024   # a /metrics page larger than this is not kept

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]

# normalised series, in the order a report shows them
SERIES = ("requests_running", "requests_waiting", "kv_cache_usage", "prefix_cache_hit_rate", "preemptions",
          "spec_decode_acceptance", "spec_decode_accept_length")


# -- where to scrape ---------------------------------------------------------------------
def metrics_url(endpoint_url: str | None, given: str | None = None) -> str:
    """The URL to scrape: ``given`` if set (``http://h:p`` alone means ``http://h:p/metrics``),
    else ``/metrics`` on the host of the perf endpoint
    (``http://h:p/v1/chat/completions`` → ``http://h:p/metrics``)."""
    if given:
        parts = urlsplit(given)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--server-metrics {redact_text(given)!r} is not an http(s) URL",
                              "e.g. --server-metrics http://127.0.0.1:8000/metrics")
        if parts.path in ("", "/"):
            parts = parts._replace(path=METRICS_PATH)
        return urlunsplit(parts)
    if not endpoint_url:
        raise ConfigError("--server-metrics needs the server's address and this run has no --url",
                          "pass the metrics URL: --server-metrics http://HOST:PORT/metrics")
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"cannot derive a /metrics URL from --url {redact_text(endpoint_url)!r}",
                          "pass it: --server-metrics http://HOST:PORT/metrics")
    return urlunsplit((parts.scheme, parts.netloc, METRICS_PATH, "", ""))


def scrape_headers(metrics: str, endpoint_url: str | None, headers: dict[str, str]) -> dict[str, str]:
    """The run's headers (Authorization included) go to the metrics URL only when it is on the
    same scheme, host and port as the endpoint: a key is never sent to another host."""
    if not endpoint_url:
        return {}
    a, b = urlsplit(metrics), urlsplit(endpoint_url)
    same = (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    return {k: v for k, v in headers.items() if k.lower() != "content-type"} if same else {}


# -- parsing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float


def _is_bucket(line: str) -> bool:
    return "_bucket{" in line and 'le="' in line


def parse_metrics(text: str) -> tuple[list[Sample], int]:
    """Samples of one Prometheus text page and the number of unreadable lines skipped.

    Histogram buckets and ``_created`` timestamps are left out; NaN and infinite values too.
    A page the parser rejects is read again line by line, keeping what can be read. Raises
    ``ValueError`` when nothing in it is a sample."""
    from prometheus_client.parser import text_string_to_metric_families

    lines = [ln for ln in text.splitlines() if ln.strip() and not _is_bucket(ln)]
    skipped = 0
    try:
        samples = _samples(text_string_to_metric_families("\n".join(lines) + "\n"))
    except Exception:  # noqa: BLE001 - any parser failure: salvage what can be read
        samples = []
        for ln in lines:
            if ln.lstrip().startswith("#"):
                continue
            try:
                samples += _samples(text_string_to_metric_families(ln + "\n"))
            except Exception:  # noqa: BLE001
                skipped += 1
    if not samples:
        first = next((ln.strip() for ln in lines if not ln.lstrip().startswith("#")), "")
        raise ValueError("page is not Prometheus text" + (f", it starts {first[:40]!r}" if first else ": no samples"))
    return samples, skipped


def _samples(families: Iterable[Any]) -> list[Sample]:
    out = []
    for fam in families:
        for s in fam.samples:
            if s.name.endswith("_created") or s.name.endswith("_bucket"):
                continue
            v = float(s.value)
            if math.isfinite(v):
                out.append(Sample(s.name, tuple(sorted(s.labels.items())), v))
    return out


# -- the catalogue -----------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """How one normalised series comes from a server's metrics.

    ``how``: ``sum`` or ``mean`` of a gauge over label sets; ``rate``: a counter's increase per
    second; ``ratio``: increase of ``names[0]`` over increase of ``names[1]``; ``length``:
    ``1 + ratio`` (accepted tokens per draft plus the bonus token)."""

    how: str
    names: tuple[str, ...]


def _g(how: str, *names: str) -> Rule:
    return Rule(how, names)


# Per server family, per series: rules in order of preference; the first whose metrics the
# server exports is used. Names as prometheus_client's parser gives them (counters: *_total).
CATALOGUE: dict[str, dict[str, tuple[Rule, ...]]] = {
    "vllm": {
        "requests_running": (_g("sum", "vllm:num_requests_running"),),
        "requests_waiting": (_g("sum", "vllm:num_requests_waiting"),),
        "kv_cache_usage": (_g("mean", "vllm:kv_cache_usage_perc"), _g("mean", "vllm:gpu_cache_usage_perc")),
        "prefix_cache_hit_rate": (_g("ratio", "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
                                  _g("ratio", "vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
                                  _g("mean", "vllm:gpu_prefix_cache_hit_rate")),
        "preemptions": (_g("rate", "vllm:num_preemptions_total"),),
        "spec_decode_acceptance": (_g("ratio", "vllm:spec_decode_num_accepted_tokens_total",
                                      "vllm:spec_decode_num_draft_tokens_total"),
                                   _g("mean", "vllm:spec_decode_draft_acceptance_rate")),
        "spec_decode_accept_length": (_g("length", "vllm:spec_decode_num_accepted_tokens_total",
                                         "vllm:spec_decode_num_drafts_total"),),
    },
    "sglang": {
        "requests_running": (_g("sum", "sglang:num_running_reqs"),),
        "requests_waiting": (_g("sum", "sglang:num_queue_reqs"),),
        "kv_cache_usage": (_g("mean", "sglang:token_usage"),),
        "prefix_cache_hit_rate": (_g("mean", "sglang:cache_hit_rate"),),
        "preemptions": (_g("rate", "sglang:num_retracted_requests_total"),),  # SGLang retracts requests
        "spec_decode_acceptance": (_g("mean", "sglang:spec_accept_rate"),),
        "spec_decode_accept_length": (_g("mean", "sglang:spec_accept_length"),),
    },
    "tgi": {
        "requests_running": (_g("sum", "tgi_batch_current_size"),),
        "requests_waiting": (_g("sum", "tgi_queue_size"),),
    },
    "lmdeploy": {
        "requests_running": (_g("sum", "lmdeploy:num_requests_running"),),
        "requests_waiting": (_g("sum", "lmdeploy:num_requests_waiting"),),
        "kv_cache_usage": (_g("mean", "lmdeploy:gpu_cache_usage_perc"),),
        "prefix_cache_hit_rate": (_g("mean", "lmdeploy:prefix_cache_hit_rate"),),
        "spec_decode_acceptance": (_g("ratio", "lmdeploy:spec_decode_num_accepted_tokens_total",
                                      "lmdeploy:spec_decode_num_draft_tokens_total"),
                                   _g("mean", "lmdeploy:spec_decode_mean_accept_rate")),
        "spec_decode_accept_length": (_g("length", "lmdeploy:spec_decode_num_accepted_tokens_total",
                                         "lmdeploy:spec_decode_num_drafts_total"),
                                      _g("mean", "lmdeploy:spec_decode_mean_accept_length")),
    },
}
PREFIXES = {"vllm": "vllm:", "sglang": "sglang:", "tgi": "tgi_", "lmdeploy": "lmdeploy:"}


def recognise(names: Iterable[str]) -> str | None:
    """The server family whose metric prefix most names carry, or None."""
    counts = dict.fromkeys(PREFIXES, 0)
    for name in names:
        for fam, prefix in PREFIXES.items():
            if name.startswith(prefix):
                counts[fam] += 1
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else None


def _breakdown(labels: Labels) -> bool:
    """A per-priority breakdown beside a total (SGLang writes ``priority="1"`` next to
    ``priority=""``): not summed with the totals."""
    return any(k == "priority" and v for k, v in labels)


def normalise(times: list[float], raw: dict[Key, list[float]], family: str | None) -> dict[str, list[tuple[float, float]]]:
    """Normalised series (time, value) from a raw matrix (one value per scrape, NaN where a
    series was absent). Counter-based series get a value at every scrape after the first whose
    interval saw no counter reset (and, for ratios, a non-zero denominator)."""
    if family is None:
        return {}
    by_name: dict[str, list[list[float]]] = {}
    for (name, labels), values in raw.items():
        if not _breakdown(labels):
            by_name.setdefault(name, []).append(values)
    out: dict[str, list[tuple[float, float]]] = {}
    for series, rules in CATALOGUE[family].items():
        rule = next((r for r in rules if all(n in by_name for n in r.names)), None)
        if rule is None:
            continue
        points = _apply(rule, times, [by_name[n] for n in rule.names])
        if points:
            out[series] = points
    return out


def _apply(rule: Rule, times: list[float], cols: list[list[list[float]]]) -> list[tuple[float, float]]:
    points = []
    for i, t in enumerate(times):
        if rule.how in ("sum", "mean"):
            vals = [v[i] for v in cols[0] if not math.isnan(v[i])]
            if vals:
                points.append((t, sum(vals) if rule.how == "sum" else sum(vals) / len(vals)))
            continue
        if i == 0:
            continue
        deltas = [_delta(c, i) for c in cols]
        if any(d is None for d in deltas):
            continue
        if rule.how == "rate":
            dt = t - times[i - 1]
            if dt > 0:
                points.append((t, deltas[0] / dt))
        elif deltas[1] > 0:
            ratio = deltas[0] / deltas[1]
            points.append((t, ratio if rule.how == "ratio" else 1.0 + ratio))
    return points


def _delta(columns: list[list[float]], i: int) -> float | None:
    """A counter's increase from scrape i-1 to i, summed over label sets present in both;
    None when none is, or when one went down (the server restarted)."""
    total, seen = 0.0, False
    for v in columns:
        a, b = v[i - 1], v[i]
        if math.isnan(a) or math.isnan(b):
            continue
        if b < a:
            return None
        total += b - a
        seen = True
    return total if seen else None


# -- one level's scrapes -----------------------------------------------------------------
@dataclass
class ScrapeResult:
    """One level's scrapes. ``times`` are ``perf_counter()`` seconds of the scrapes that gave
    samples; ``raw`` holds one value per such scrape per series (NaN where absent)."""

    url: str
    interval: float
    times: list[float] = field(default_factory=list)
    raw: dict[Key, list[float]] = field(default_factory=dict)
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    family: str | None = None
    attempts: int = 0
    failures: int = 0
    first_failure: str | None = None
    partial: int = 0              # scrapes read with unreadable lines skipped

    def warning(self) -> str | None:
        """One line for the level, or None when every scrape was read."""
        where = redact_text(self.url)
        if self.attempts and self.failures == self.attempts:
            hint = ("; SGLang and lmdeploy serve /metrics only with --enable-metrics; or pass --server-metrics URL"
                    if (self.first_failure or "").startswith("HTTP 404") else "")
            return (f"server metrics: all {self.attempts} scrapes failed ({self.first_failure} at {where}){hint}; "
                    "the run's client figures are unaffected")
        parts = []
        if self.failures:
            parts.append(f"{self.failures} of {self.attempts} scrapes failed ({self.first_failure} at {where})")
        if self.partial:
            parts.append(f"{self.partial} of {self.attempts} pages had unreadable lines, skipped")
        return f"server metrics: {'; '.join(parts)}; the run's client figures are unaffected" if parts else None


class ServerMetricsScraper:
    """Scrapes ``url`` every ``interval`` seconds between :meth:`start` and :meth:`stop`, in the
    running event loop (or, for ``--workers`` runs whose parent loop is idle, in a thread of its
    own: :meth:`start_thread` / :meth:`stop_thread`). Never raises into the run."""

    def __init__(self, url: str, interval: float = 1.0, headers: dict[str, str] | None = None,
                 timeout: float = 5.0):
        self.url = url
        self.interval = interval
        self.headers = {"Accept": "text/plain;version=0.0.4", **(headers or {})}  # not OpenMetrics
        self.timeout = timeout
        self._bodies: list[tuple[float, bytes]] = []   # (perf_counter, zlib-compressed page)
        self._result = ScrapeResult(url, interval)
        self._session: Any = None
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    @property
    def attempts(self) -> int:
        """Scrapes tried so far."""
        return self._result.attempts

    async def start(self) -> None:
        """Start scraping; waits for the first scrape (the counters' baseline) for at most one
        interval."""
        import aiohttp

        try:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1),
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        except Exception as exc:  # noqa: BLE001 - never into the run
            self._fail(f"{exc.__class__.__name__}: {exc}")
            return
        first = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._loop(first))
        await asyncio.wait([first], timeout=self.interval)

    async def stop(self) -> ScrapeResult:
        """Stop, take one last scrape (the counters' end point), parse everything."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await self._scrape()
        if self._session is not None:
            await self._session.close()
            self._session = None
        return self._build()

    def start_thread(self) -> None:
        """Scrape from a thread with its own event loop (while the caller blocks, e.g. on
        worker processes)."""
        loop = self._thread_loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="server-metrics", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), loop).result()

    def stop_thread(self) -> ScrapeResult:
        loop, thread = self._thread_loop, self._thread
        assert loop is not None and thread is not None, "start_thread() was not called"
        result = asyncio.run_coroutine_threadsafe(self.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._thread = self._thread_loop = None
        return result

    # -- the hot path: one GET per interval, nothing parsed -------------------------------
    async def _loop(self, first: asyncio.Future) -> None:
        perf = time.perf_counter
        due = perf()
        try:
            while True:
                await self._scrape()
                if not first.done():
                    first.set_result(None)
                due += self.interval
                now = perf()
                if due < now:  # a slow scrape: skip the missed slots, keep the grid
                    due += math.ceil((now - due) / self.interval) * self.interval
                await asyncio.sleep(due - now)
        finally:
            if not first.done():
                first.set_result(None)

    async def _scrape(self) -> None:
        perf = time.perf_counter
        self._result.attempts += 1
        t0 = perf()
        try:
            async with self._session.get(self.url, headers=self.headers) as resp:
                if resp.status != 200:
                    self._fail(f"HTTP {resp.status}")
                    return
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > MAX_BODY:
                        self._fail(f"page larger than {MAX_BODY >> 20} MiB")
                        return
                    chunks.append(chunk)
            body = b"".join(chunks)
            # the server wrote the page somewhere between send and receipt: stamp the middle
            self._bodies.append(((t0 + perf()) / 2, zlib.compress(body, 1)))
        except asyncio.CancelledError:
            self._result.attempts -= 1  # cancelled by stop(): not an attempt
            raise
        except Exception as exc:  # noqa: BLE001 - a failed scrape is a warning, never a failed run
            self._fail(_reason(exc))

    def _fail(self, reason: str) -> None:
        self._result.failures += 1
        if self._result.first_failure is None:
            self._result.first_failure = reason

    # -- after the level: parse -------------------------------------------------------------
    def _build(self) -> ScrapeResult:
        pages = ((t, zlib.decompress(blob).decode("utf-8", "replace")) for t, blob in self._bodies)
        read_pages(self._result, pages)
        self._bodies.clear()
        return self._result


def read_pages(result: ScrapeResult, pages: Iterable[tuple[float, str]]) -> ScrapeResult:
    """Parse (time, page text) pairs into ``result``: raw matrix, server family, normalised
    series. A page that is not Prometheus text counts as a failed scrape."""
    nan = math.nan
    for t, text in pages:
        try:
            samples, skipped = parse_metrics(text)
        except ValueError as exc:
            result.failures += 1
            result.first_failure = result.first_failure or str(exc)
            continue
        result.partial += 1 if skipped else 0
        i = len(result.times)
        result.times.append(t)
        for s in samples:
            col = result.raw.get((s.name, s.labels))
            if col is None:
                col = result.raw[(s.name, s.labels)] = [nan] * i
            if len(col) == i:
                col.append(s.value)
            else:  # the same series twice in one page: the last wins
                col[i] = s.value
        for col in result.raw.values():
            if len(col) == i:
                col.append(nan)
    result.family = recognise(name for name, _ in result.raw)
    result.series = normalise(result.times, result.raw, result.family)
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}"[:160] if text else exc.__class__.__name__


# -- perf.sqlite and summary.json ----------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS server_metrics (run_id INTEGER, t_s REAL, name TEXT, labels_json TEXT, value REAL);
CREATE TABLE IF NOT EXISTS server_series (run_id INTEGER, t_s REAL, series TEXT, value REAL);
CREATE INDEX IF NOT EXISTS server_series_run ON server_series (run_id, series, t_s);
"""


def create_tables(db: Any) -> None:
    db.executescript(SCHEMA)


def store(db: Any, run_id: int, result: ScrapeResult, origin: float) -> None:
    """Write one level's series (replacing any earlier rows of ``run_id``); ``t_s`` is seconds
    from ``origin`` (the level's ``clock_origin``), so it lines up with the requests table."""
    raw_rows = []
    for (name, labels), values in result.raw.items():
        lab = orjson.dumps(dict(labels)).decode()
        raw_rows += [(run_id, t - origin, name, lab, v) for t, v in zip(result.times, values) if not math.isnan(v)]
    series_rows = [(run_id, t - origin, s, v) for s, points in result.series.items() for t, v in points]
    with db:
        db.execute("DELETE FROM server_metrics WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM server_series WHERE run_id = ?", (run_id,))
        db.executemany("INSERT INTO server_metrics VALUES (?,?,?,?,?)", raw_rows)
        db.executemany("INSERT INTO server_series VALUES (?,?,?,?)", series_rows)


def summary(result: ScrapeResult) -> dict[str, Any]:
    """For a level's entry in summary.json: which server was recognised, how many scrapes
    worked, and mean/max/last of each normalised series."""
    series = {}
    for name in SERIES:
        points = result.series.get(name)
        if points:
            values = [v for _, v in points]
            series[name] = {"mean": sum(values) / len(values), "max": max(values), "last": values[-1],
                            "points": len(values)}
    return {"url": redact_text(result.url), "family": result.family or "unknown", "interval_s": result.interval,
            "scrapes": result.attempts, "read": len(result.times), "failed": result.failures,
            "raw_series": len(result.raw), "series": series, "warning": result.warning()}


def server_metrics_target(c: Any, bconf: Any) -> tuple[str, dict[str, str]]:
    """(the /metrics URL, the headers it may get) of ``--server-metrics [URL]``: the run's
    Authorization and extra headers go only to the endpoint's own host and port."""
    url = metrics_url(c.url, c.server_metrics or None)
    headers = {k.strip(): v.strip() for k, _, v in (str(h).partition("=") for h in bconf.options.get("headers") or ())}
    if bconf.api_key:
        headers["Authorization"] = f"Bearer {bconf.api_key}"
    return url, scrape_headers(url, c.url, headers)
