"""lmgauge's own perf metrics, registered through ``register_perf_metrics`` exactly as a
plugin's are (the plugin manager loads this module as a core plugin).

Definitions (all from ``time.perf_counter()`` stamps taken as bytes arrive):

- ``ttft``: first chunk carrying content or reasoning text − send time; ``ttfc`` (time to
  first content): first chunk of visible content − send time (differs for reasoning models).
- ``latency`` (``e2el``): end of stream − send time; ``queue_delay``: send − scheduled time.
- ``itl``: gaps between successive content chunks, per token (a chunk of k tokens gives k gaps
  of gap / k); ``tpot``: (latency − TTFT) / (output tokens − 1), only for streams of more
  than one chunk (one body says nothing about the pace).
- ``input_tokens``, ``output_tokens``, ``cached_tokens`` (the server's prefix-cache hits),
  ``prefix_cache_hit_rate`` (cached / prompt tokens), ``output_tps_request`` and
  ``total_tps_request`` (a request's tokens / its latency).
- Level rates divide by the level's wall time (first scheduled request to last response end):
  ``rps``, ``output_tps``, ``total_tps``, ``input_tps``, ``goodput`` (requests that succeeded
  and met every ``--slo``; only with ``--slo``), ``success_rate``; embeddings, rerank and
  score endpoints add ``inputs`` (texts or documents per request) and ``inputs_per_s``.
"""
from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..interfaces import PerfMetric
from ..types import PerfRecord

S = "s"


class TTFT(PerfMetric):
    title = "Time to first token"
    name, key, unit, order, summary_order = "ttft", "ttft_s", S, 10, 40
    description = "time to first token: first chunk with content or reasoning − send time"
    stored = True
    columns = {"text": ("TTFT (s)", 4, 4)}
    summary = {"text": (("mean", "Avg TTFT(s)", 3), ("p99", "P99 TTFT(s)", 3))}

    def per_request(self, record: PerfRecord, row: Any) -> float | None:
        return record.first_token - record.sent if record.first_token is not None else None


class TTFC(PerfMetric):
    title = "Time to first content"
    name, key, unit, order = "ttfc", "ttfc_s", S, 15
    description = "time to first visible content (after any reasoning) − send time"
    stored = True

    def per_request(self, record: PerfRecord, row: Any) -> float | None:
        return record.first_content - record.sent if record.first_content is not None else None


class Latency(PerfMetric):
    title = "End-to-end latency"
    name, key, unit, order, summary_order = "latency", "latency_s", S, 40, 20
    aliases = ("e2el",)
    endpoints = "all"
    description = "end-to-end latency: end of the response − send time"
    stored = True
    columns = {"text": ("Latency (s)", 4, 4), "no_text": ("Latency (s)", 4, 4)}
    summary = {"text": (("mean", "Avg Lat.(s)", 3), ("p99", "P99 Lat.(s)", 3)),
               "no_text": (("mean", "Avg Lat.(s)", 3), ("p50", "P50 Lat.(s)", 3), ("p99", "P99 Lat.(s)", 3))}

    def per_request(self, record: PerfRecord, row: Any) -> float | None:
        return record.end - record.sent if record.end else None


class QueueDelay(PerfMetric):
    title = "Queue delay"
    name, key, unit, order = "queue_delay", "queue_delay_s", S, 45
    over, endpoints = "all", "all"
    description = "client queue delay: send − scheduled time (the client or the in-flight cap fell behind)"
    stored = True

    def per_request(self, record: PerfRecord, row: Any) -> float:
        return max(0.0, record.sent - record.scheduled) if record.scheduled else 0.0


class ITL(PerfMetric):
    title = "Inter-token latency"
    name, key, unit, order = "itl", "itl_s", S, 20
    description = "inter-token latency: gaps between content chunks, per token"
    stored, is_list = True, True
    columns = {"text": ("ITL (s)", 4, 4)}

    def per_request(self, record: PerfRecord, row: Any) -> list[float]:
        if not record.success:
            return []
        toks = row.chunk_tokens
        times = record.chunk_times
        out: list[float] = []
        for i in range(1, len(times)):
            k = toks[i] if i < len(toks) else 1
            if k > 0:
                out.extend([(times[i] - times[i - 1]) / k] * k)
        return out


class TPOT(PerfMetric):
    title = "Time per output token"
    name, key, unit, order, summary_order = "tpot", "tpot_s", S, 30, 50
    description = "time per output token after the first: (latency − TTFT) / (output tokens − 1)"
    stored = True
    columns = {"text": ("TPOT (s)", 4, 4)}
    summary = {"text": (("mean", "Avg TPOT(s)", 4), ("p99", "P99 TPOT(s)", 4))}

    def per_request(self, record: PerfRecord, row: Any) -> float | None:
        out = record.completion_tokens or 0
        ttft, latency = row.value("ttft_s"), row.value("latency_s")
        if record.success and out > 1 and ttft is not None and latency is not None and len(record.chunk_times) > 1:
            return (latency - ttft) / (out - 1)
        return None


class InputTokens(PerfMetric):
    title = "Input tokens"
    name, key, unit, order, endpoints = "input_tokens", "input_tokens", "tokens", 50, "all"
    description = "prompt tokens of a request (the server's usage, else the tokenizer's count)"
    directional = False
    columns = {"text": ("Input tokens", 0, 1), "no_text": ("Input tokens", 0, 1)}

    def per_request(self, record: PerfRecord, row: Any) -> int | None:
        return record.prompt_tokens


class OutputTokens(PerfMetric):
    title = "Output tokens"
    name, key, unit, order = "output_tokens", "output_tokens", "tokens", 60
    description = "output tokens of a request"
    directional = False
    columns = {"text": ("Output tokens", 0, 1)}

    def per_request(self, record: PerfRecord, row: Any) -> int | None:
        return record.completion_tokens


class OutputRatePerRequest(PerfMetric):
    title = "Output tokens/s per request"
    name, key, unit, order = "output_tps_request", "output_token_rate_per_request", "tok/s", 70
    higher_is_better = True
    description = "a request's output tokens / its latency"
    columns = {"text": ("Output (tok/s)", 2, 2)}

    def per_request(self, record: PerfRecord, row: Any) -> float | None:
        lat = row.value("latency_s")
        return (record.completion_tokens or 0) / lat if lat else None


class TotalRatePerRequest(PerfMetric):
    title = "Tokens/s per request"
    name, key, unit, order, endpoints = "total_tps_request", "total_token_rate_per_request", "tok/s", 80, "all"
    higher_is_better = True
    description = "a request's input and output tokens / its latency"
    columns = {"text": ("Total (tok/s)", 2, 2), "no_text": ("Input (tok/s)", 1, 1)}

    def per_request(self, record: PerfRecord, row: Any) -> float | None:
        lat = row.value("latency_s")
        return ((record.prompt_tokens or 0) + (record.completion_tokens or 0)) / lat if lat else None


class CachedTokens(PerfMetric):
    title = "Cached prompt tokens"
    name, key, unit, order, endpoints = "cached_tokens", "cached_tokens", "tokens", 90, "all"
    description = "prompt tokens the server served from its prefix cache (usage.prompt_tokens_details.cached_tokens)"
    directional = False

    def per_request(self, record: PerfRecord, row: Any) -> int | None:
        return record.cached_tokens


class PrefixCacheHitRate(PerfMetric):
    title = "Prefix-cache hit rate"
    name, key, unit, order, endpoints = "prefix_cache_hit_rate", "prefix_cache_hit_rate", "share", 95, "all"
    higher_is_better = True
    description = "cached / prompt tokens of a request whose server reports cached tokens"

    def per_request(self, record: PerfRecord, row: Any) -> float | None:
        if record.cached_tokens is None or not record.prompt_tokens:
            return None
        return record.cached_tokens / record.prompt_tokens


class Inputs(PerfMetric):
    title = "Inputs per request"
    name, key, unit, order, endpoints = "inputs", "inputs", "inputs", 55, "no_text"
    description = "texts embedded or documents scored per request (embeddings, rerank, score)"
    directional = False
    columns = {"no_text": ("Inputs", 0, 1)}
    omit_empty = True

    def per_request(self, record: PerfRecord, row: Any) -> int | None:
        return record.inputs


# -- level metrics ----------------------------------------------------------------------------
class _Rate(PerfMetric):
    kind = "level"
    higher_is_better = True


class RPS(_Rate):
    title = "Request throughput"
    name, key, unit, summary_order, endpoints = "rps", "request_throughput", "req/s", 10, "all"
    description = "successful requests per second of wall time"
    summary = {"text": ((None, "RPS", 2),), "no_text": ((None, "RPS", 2),)}

    def level(self, level: Any) -> float:
        return level.succeeded / level.wall


class OutputTPS(_Rate):
    title = "Output throughput"
    name, key, unit, summary_order = "output_tps", "output_token_throughput", "tok/s", 30
    export_name = "output_tok_s"
    description = "output tokens of successful requests per second of wall time"
    summary = {"text": ((None, "Gen. toks/s", 2),)}

    def level(self, level: Any) -> float:
        return level.output_tokens / level.wall


class TotalTPS(_Rate):
    title = "Total token throughput"
    name, key, unit, endpoints = "total_tps", "total_token_throughput", "tok/s", "all"
    export_name = "total_tok_s"
    description = "input and output tokens of successful requests per second of wall time"

    def level(self, level: Any) -> float:
        return (level.input_tokens + level.output_tokens) / level.wall


class InputTPS(_Rate):
    title = "Input throughput"
    name, key, unit, summary_order, endpoints = "input_tps", "input_token_throughput", "tok/s", 32, "all"
    description = "input tokens of successful requests per second of wall time"
    summary = {"no_text": ((None, "Input toks/s", 1),)}

    def level(self, level: Any) -> float:
        return level.input_tokens / level.wall


class InputsPerSecond(_Rate):
    title = "Inputs per second"
    name, key, unit, summary_order, endpoints = "inputs_per_s", "input_throughput", "inputs/s", 34, "no_text"
    description = "texts embedded or documents scored per second of wall time"
    summary = {"no_text": ((None, "Inputs/s", 1),)}

    def level(self, level: Any) -> float | None:
        inputs = [r.inputs for r in level.ok if r.inputs is not None]
        return sum(inputs) / level.wall if inputs else None


class Goodput(_Rate):
    title = "Goodput"
    name, key, unit, endpoints = "goodput", "goodput", "req/s", "all"
    description = "requests per second that succeeded and met every --slo (only with --slo)"

    def level(self, level: Any) -> float | None:
        return level.good / level.wall if level.slo else None


class SuccessRate(_Rate):
    title = "Success rate"
    name, key, unit, summary_order, endpoints = "success_rate", "success_rate", "share", 90, "all"
    description = "share of the level's requests that succeeded"
    summary = {"text": ((None, "Success", 1),), "no_text": ((None, "Success", 1),)}

    def level(self, level: Any) -> float:
        return level.succeeded / level.requests if level.requests else 0.0

    def format(self, value: float | None, digits: int) -> str:
        return "-" if value is None else f"{100 * value:.{digits}f}%"


BUILTIN = (TTFT, TTFC, Latency, QueueDelay, ITL, TPOT, InputTokens, OutputTokens, OutputRatePerRequest,
           TotalRatePerRequest, CachedTokens, PrefixCacheHitRate, Inputs,
           RPS, OutputTPS, TotalTPS, InputTPS, InputsPerSecond, Goodput, SuccessRate)


@hookimpl
def register_perf_metrics(register):
    for cls in BUILTIN:
        register(cls())
