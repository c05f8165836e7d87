"""A server exposing Prometheus ``/metrics`` text as real inference servers write it, for the
server-metrics scraper's tests and bench.

``python tests/metrics_server.py --flavor vllm|sglang|tgi|lmdeploy|garbage|404 [--engines N]
[--model NAME] [--fail-every K] [--port P]`` prints ``PORT <n>``.

The text follows each server's documented metric names and the exposition format its library
writes: vLLM, SGLang and lmdeploy use prometheus_client (``# HELP``/``# TYPE`` lines, labels in
alphabetical order, floats as ``3.0`` or ``8.128902e+06``, counters ending in ``_total``,
histograms as ``_bucket{le=..}``/``_sum``/``_count``; SGLang also writes the ``_created``
timestamps prometheus_client adds by default, vLLM and lmdeploy switch them off); TGI uses the
Rust ``metrics`` exporter (integers without ``.0``, counters without ``_total``, no labels on
its gauges). Label sets: vLLM and lmdeploy ``model_name`` + ``engine`` (one per ``--engines``),
SGLang ``model_name``, ``engine_type``, ``tp_rank``, ``pp_rank``, plus per-priority breakdowns
(``priority="1"``) beside the totals (``priority=""``) of its request gauges, as SGLang writes
them with priority scheduling.

Values are exact functions of the scrape index n (0 for the first GET of ``/metrics``, then
1, 2, ...; ``/metrics?n=K`` answers for index K without counting), so tests know every value.
For engine e (0-based; SGLang and TGI have one):

- running requests ``n + 1 + e``; waiting ``2 * n + e``; KV-cache usage ``0.1 * (e + 1) + 0.01 * n``
- prefix cache: queries ``+100`` and hits ``+25`` per scrape (vLLM, lmdeploy counters:
  hit rate 0.25); SGLang's gauge ``sglang:cache_hit_rate`` is 0.25 too; lmdeploy's gauge
  ``lmdeploy:prefix_cache_hit_rate`` 0.25
- preemptions ``+2`` per scrape (vLLM ``vllm:num_preemptions_total``, SGLang
  ``sglang:num_retracted_requests_total``)
- speculative decoding: drafts ``+4``, draft tokens ``+10``, accepted tokens ``+7`` per scrape
  (acceptance 0.7, mean accepted length 1 + 7/4 = 2.75); SGLang gauges
  ``sglang:spec_accept_rate`` 0.7 and ``sglang:spec_accept_length`` 2.75
- an unknown series ``lmgauge_fixture_custom{kind="x"}`` = ``n * 1.5`` in every flavour (a
  metric no catalogue knows, to be kept raw)

``garbage`` answers 200 with an HTML page; ``404`` answers 404. ``--fail-every K`` answers
HTTP 500 to every K-th scrape (n = K-1, 2K-1, ...). Any other path answers 404.
"""
from __future__ import annotations

import argparse
import asyncio
import math
from typing import Iterator

from aiohttp import web

START = 1_764_000_000.0  # a fixed Unix time for _created samples


def go_float(v: float) -> str:
    """A float as prometheus_client writes it (Go's formatting): 3.0, 0.25, 8.128902e+06."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if abs(v) >= 1e6:
        mantissa, exp = f"{v:.15e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{exp[0]}{int(exp[1:]):02d}"
    return repr(float(v))


def labels_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class Writer:
    """Writes metric families in the text exposition format."""

    def __init__(self, rust: bool = False, created: bool = False):
        self.lines: list[str] = []
        self.rust = rust          # Rust `metrics` exporter style (TGI)
        self.created = created    # prometheus_client's default _created samples

    def num(self, v: float) -> str:
        if self.rust and float(v).is_integer():
            return str(int(v))
        return go_float(v)

    def family(self, name: str, kind: str, doc: str, samples: list[tuple[dict[str, str], float]]) -> None:
        if not self.rust:
            self.lines.append(f"# HELP {name} {doc}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines += [f"{name}{labels_text(lab)} {self.num(v)}" for lab, v in samples]
        if self.created and kind == "counter" and name.endswith("_total"):
            base = name[: -len("_total")] + "_created"
            if not self.rust:
                self.lines.append(f"# HELP {base} {doc}")
            self.lines.append(f"# TYPE {base} gauge")
            self.lines += [f"{base}{labels_text(lab)} {go_float(START)}" for lab, _ in samples]

    def histogram(self, name: str, doc: str, buckets: list[float], per_label: list[tuple[dict[str, str], int, float]]) -> None:
        """``per_label``: (labels, observation count, sum); observations fall into the middle bucket."""
        if not self.rust:
            self.lines.append(f"# HELP {name} {doc}")
        self.lines.append(f"# TYPE {name} histogram")
        for lab, count, total in per_label:
            self.lines.append(f"{name}_sum{labels_text(lab)} {self.num(total)}")
            mid = len(buckets) // 2
            for i, le in enumerate([*buckets, math.inf]):
                le_text = "+Inf" if math.isinf(le) else (str(le) if self.rust else go_float(le))
                self.lines.append(f"{name}_bucket{labels_text({**lab, 'le': le_text})} {self.num(count if i >= mid else 0)}")
            self.lines.append(f"{name}_count{labels_text(lab)} {self.num(count)}")
        if self.created:
            if not self.rust:
                self.lines.append(f"# HELP {name}_created {doc}")
            self.lines.append(f"# TYPE {name}_created gauge")
            self.lines += [f"{name}_created{labels_text(lab)} {go_float(START)}" for lab, _, _ in per_label]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                   20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
TOKEN_BUCKETS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]


def process_metrics(w: Writer, n: int) -> None:
    """What prometheus_client's default collectors add to every Python server's page (they
    write no _created samples)."""
    created, w.created = w.created, False
    w.family("python_gc_objects_collected_total", "counter", "Objects collected during gc",
             [({"generation": str(g)}, 1000.0 * (g + 1) + n) for g in range(3)])
    w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [({}, 2.147483648e9 + n)])
    w.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", [({}, 12.5 + n)])
    w.created = created


def custom(w: Writer, n: int) -> None:
    w.family("lmgauge_fixture_custom", "gauge", "A metric no catalogue knows.", [({"kind": "x"}, n * 1.5)])


def vllm(n: int, engines: int, model: str) -> str:
    w = Writer()
    process_metrics(w, n)
    eng = [{"engine": str(e), "model_name": model} for e in range(engines)]
    w.family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
             [(lab, float(n + 1 + e)) for e, lab in enumerate(eng)])
    w.family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
             [(lab, float(2 * n + e)) for e, lab in enumerate(eng)])
    w.family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
             [(lab, 0.1 * (e + 1) + 0.01 * n) for e, lab in enumerate(eng)])
    w.family("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.",
             [(lab, 100.0 * n) for lab in eng])
    w.family("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.",
             [(lab, 25.0 * n) for lab in eng])
    w.family("vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the engine.",
             [(lab, 2.0 * n) for lab in eng])
    w.family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", [(lab, 1024.0 * n) for lab in eng])
    w.family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
             [(lab, 8.128902e+06 + 256.0 * n) for lab in eng])
    w.family("vllm:request_success_total", "counter", "Count of successfully processed requests.",
             [({**lab, "finished_reason": r}, float(n if r == "length" else 0)) for lab in eng for r in ("stop", "length", "abort")])
    w.family("vllm:spec_decode_num_drafts_total", "counter", "Number of spec decoding drafts.", [(lab, 4.0 * n) for lab in eng])
    w.family("vllm:spec_decode_num_draft_tokens_total", "counter", "Number of draft tokens.", [(lab, 10.0 * n) for lab in eng])
    w.family("vllm:spec_decode_num_accepted_tokens_total", "counter", "Number of accepted tokens.",
             [(lab, 7.0 * n) for lab in eng])
    w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", LATENCY_BUCKETS,
                [(lab, n, 0.05 * n) for lab in eng])
    w.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", LATENCY_BUCKETS,
                [(lab, n, 1.5 * n) for lab in eng])
    w.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", TOKEN_BUCKETS,
                [(lab, n, 1024.0 * n) for lab in eng])
    w.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                [1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0],
                [(lab, 3 * n, 40.0 * n) for lab in eng])
    custom(w, n)
    return w.text()


def sglang(n: int, model: str) -> str:
    w = Writer(created=True)
    process_metrics(w, n)
    lab = {"engine_type": "unified", "model_name": model, "pp_rank": "0", "tp_rank": "0"}
    # totals carry priority="" and breakdowns priority="<int>" (SGLang with priority scheduling)
    w.family("sglang:num_running_reqs", "gauge", "The number of running requests.",
             [({**lab, "priority": ""}, float(n + 1)), ({**lab, "priority": "1"}, float(n + 1))])
    w.family("sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.",
             [({**lab, "priority": ""}, float(2 * n)), ({**lab, "priority": "1"}, float(2 * n))])
    w.family("sglang:gen_throughput", "gauge", "The generation throughput (token/s).", [(lab, 512.0)])
    w.family("sglang:token_usage", "gauge", "The token usage.", [(lab, 0.1 + 0.01 * n)])
    w.family("sglang:num_used_tokens", "gauge", "The number of used tokens.", [(lab, 1000.0 * n)])
    w.family("sglang:cache_hit_rate", "gauge", "The prefix cache hit rate.", [(lab, 0.25)])
    w.family("sglang:spec_accept_length", "gauge", "The average acceptance length of speculative decoding.", [(lab, 2.75)])
    w.family("sglang:spec_accept_rate", "gauge", "Speculative acceptance rate.", [(lab, 0.7)])
    w.family("sglang:num_retracted_reqs", "gauge", "The number of retracted requests.", [(lab, 2.0)])
    w.family("sglang:num_retracted_requests_total", "counter", "Total number of retracted requests.", [(lab, 2.0 * n)])
    w.family("sglang:prompt_tokens_total", "counter", "Number of prefill tokens processed.", [(lab, 8.128902e+06 + n)])
    w.family("sglang:generation_tokens_total", "counter", "Number of generation tokens processed.", [(lab, 7.557572e+06 + n)])
    w.family("sglang:num_requests_total", "counter", "Number of requests processed.", [(lab, float(n))])
    w.histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", LATENCY_BUCKETS,
                [(lab, n, 0.05 * n)])
    w.histogram("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds.",
                LATENCY_BUCKETS, [(lab, n, 1.5 * n)])
    custom(w, n)
    return w.text()


def tgi(n: int) -> str:
    w = Writer(rust=True)
    w.family("tgi_queue_size", "gauge", "", [({}, float(2 * n))])
    w.family("tgi_batch_current_size", "gauge", "", [({}, float(n + 1))])
    w.family("tgi_batch_current_max_tokens", "gauge", "", [({}, 4096.0 + n)])
    w.family("tgi_request_count", "counter", "", [({}, float(n))])
    w.family("tgi_request_success", "counter", "", [({}, float(n))])
    w.histogram("tgi_request_duration", "", [0.1, 0.5, 1.0, 5.0, 10.0], [({}, n, 1.5 * n)])
    w.histogram("tgi_batch_inference_duration", "", [0.01, 0.05, 0.1, 0.5],
                [({"method": "prefill"}, n, 0.02 * n), ({"method": "decode"}, 10 * n, 0.1 * n)])
    custom(w, n)
    return w.text()


def lmdeploy(n: int, engines: int, model: str) -> str:
    w = Writer()
    process_metrics(w, n)
    eng = [{"engine": str(e), "model_name": model} for e in range(engines)]
    w.family("lmdeploy:num_requests_running", "gauge", "Number of requests in model execution batches.",
             [(lab, float(n + 1 + e)) for e, lab in enumerate(eng)])
    w.family("lmdeploy:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
             [(lab, float(2 * n + e)) for e, lab in enumerate(eng)])
    w.family("lmdeploy:num_api_requests_waiting", "gauge", "Number of requests waiting for free request handles.",
             [(lab, 0.0) for lab in eng])
    w.family("lmdeploy:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.",
             [(lab, 0.1 * (e + 1) + 0.01 * n) for e, lab in enumerate(eng)])
    w.family("lmdeploy:prefix_cache_hit_rate", "gauge",
             "Prefix-cache hit rate. 1 means 100 percent of queried prefix tokens hit.", [(lab, 0.25) for lab in eng])
    w.family("lmdeploy:prompt_tokens_total", "counter", "Number of prefill tokens processed.", [(lab, 1024.0 * n) for lab in eng])
    w.family("lmdeploy:generation_tokens_total", "counter", "Number of generation tokens processed.",
             [(lab, 256.0 * n) for lab in eng])
    w.family("lmdeploy:spec_decode_num_drafts_total", "counter", "Number of speculative decoding drafts.",
             [(lab, 4.0 * n) for lab in eng])
    w.family("lmdeploy:spec_decode_num_draft_tokens_total", "counter", "Number of speculative decoding draft tokens.",
             [(lab, 10.0 * n) for lab in eng])
    w.family("lmdeploy:spec_decode_num_accepted_tokens_total", "counter", "Number of speculative decoding accepted tokens.",
             [(lab, 7.0 * n) for lab in eng])
    w.histogram("lmdeploy:time_to_first_token_seconds", "Histogram of time to first token in seconds.", LATENCY_BUCKETS,
                [(lab, n, 0.05 * n) for lab in eng])
    custom(w, n)
    return w.text()


GARBAGE = "<!doctype html><html><head><title>Dashboard</title></head><body><h1>It works</h1></body></html>\n"


def render(flavor: str, n: int, engines: int = 2, model: str = "fixture/model") -> str:
    if flavor == "vllm":
        return vllm(n, engines, model)
    if flavor == "sglang":
        return sglang(n, model)
    if flavor == "tgi":
        return tgi(n)
    if flavor == "lmdeploy":
        return lmdeploy(n, engines, model)
    if flavor == "garbage":
        return GARBAGE
    raise ValueError(flavor)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flavor", choices=["vllm", "sglang", "tgi", "lmdeploy", "garbage", "404"], default="vllm")
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--model", default="fixture/model")
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    counter: Iterator[int] = iter(range(10**12))

    async def metrics(request: web.Request) -> web.Response:
        if args.flavor == "404":
            return web.Response(status=404, text="Not Found")
        n = int(request.query["n"]) if "n" in request.query else next(counter)
        if args.fail_every and (n + 1) % args.fail_every == 0:
            return web.Response(status=500, text="Internal Server Error")
        ctype = "text/html" if args.flavor == "garbage" else "text/plain; version=0.0.4; charset=utf-8"
        return web.Response(body=render(args.flavor, n, args.engines, args.model).encode(), headers={"Content-Type": ctype})

    from eval_server import serve_app  # this folder is on sys.path when run as a script

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    try:
        asyncio.run(serve_app(app, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
