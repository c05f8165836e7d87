"""What a perf sweep concludes: the best configuration (highest RPS, lowest latency, best
goodput), the knee (the smallest level at 95 % of the peak throughput) and the advice lines
(failures with the backend's own words, a client that fell behind, tokens counted without
usage)."""
from __future__ import annotations

from typing import Any

from ..runfolder import PerfLevel

KNEE = 0.95  # the knee: the smallest level reaching this share of the sweep's peak throughput


def _rps(r: PerfLevel) -> float:
    return r.stat("request_throughput") or 0.0


def best_and_advice(runs: list[PerfLevel], in_process: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Best configuration and advice. ``in_process``: the model runs in the client process, so
    client CPU is model compute and says nothing about the load generator."""
    ok = [r for r in runs if r.succeeded]
    best: dict[str, Any] = {}
    advice: list[str] = []
    for r in runs:  # every level's failures, with the backend's own words for each kind
        advice += [f"{r.name}: {note}." for note in r.notes or []]
        if r.failed:
            examples = r.failure_examples
            kinds = ", ".join(f"{k} ×{v}" for k, v in r.failures.items())
            said = "; ".join(f"first {k}: {examples[k]}" for k in r.failures if examples.get(k))
            advice.append(f"{r.name}: {r.failed} of {r.requests} requests failed ({kinds})"
                          + (f"; {said}" if said else "") + ".")
    if not ok:
        return best, advice + ["No request succeeded: check the failures above."]
    top = max(ok, key=_rps)
    fast = min(ok, key=lambda r: r.dist("latency_s").mean or float("inf"))
    best["highest_rps"] = {"run": top.name, "value": _rps(top)}
    best["lowest_latency"] = {"run": fast.name, "value": fast.dist("latency_s").mean}
    if any(r.stat("goodput") is not None for r in ok):
        good = max(ok, key=lambda r: r.stat("goodput") or 0.0)
        best["best_goodput"] = {"run": good.name, "value": good.stat("goodput")}
    knee_advice(ok, best, advice)
    for r in ok:
        lag = r.dist("queue_delay_s").get("p90")
        if r.rate is not None and not r.concurrency and lag is not None and lag > 0.010:
            advice.append(f"{r.name}: requests left {1000 * lag:.0f} ms after their scheduled time (p90): the client "
                          f"fell behind the schedule (sent {r.achieved_rate or 0:.2f} req/s); use --workers to drive more load.")
        elif r.rate is not None and r.concurrency and lag is not None and lag > 0.010:
            advice.append(f"{r.name}: requests waited {1000 * lag:.0f} ms (p90) for one of the {r.concurrency} slots "
                          "(--concurrency caps requests in flight): the server cannot keep up with this rate.")
        if not in_process and (r.client_cpu_share or 0) > 0.8:
            advice.append(f"{r.name}: the client used {r.client_cpu_share:.0%} of a core and may be the bottleneck; "
                          "add --workers.")
        if not r.text:
            if r.usage_source.get("tokenizer"):
                advice.append(f"{r.name}: the server sent no token usage; input tokens were counted with the tokenizer.")
            elif r.usage_source.get("none"):
                advice.append(f"{r.name}: the server sent no token usage and no tokenizer was given: input tokens "
                              "are unknown; pass --tokenizer.")
        elif r.usage_source.get("tokenizer") or r.usage_source.get("chunks"):
            src = "the tokenizer" if r.usage_source.get("tokenizer") else "one token per chunk (no tokenizer)"
            advice.append(f"{r.name}: the server sent no token usage; output tokens were counted with {src}.")
    return best, list(dict.fromkeys(advice))


def knee_advice(ok: list[PerfLevel], best: dict[str, Any], advice: list[str]) -> None:
    """Name the saturation point of a sweep over concurrency (or request rate): the smallest
    level that reaches ≥ 95 % of the peak throughput. Levels above it add latency, not
    throughput, so it is the one to recommend."""
    for key in ("concurrency", "rate"):
        sweep = sorted((r for r in ok if (r.rate is None) == (key == "concurrency") and getattr(r, key)
                        and not r.ramp and not r.trace), key=lambda r: getattr(r, key))
        if len(sweep) < 2:
            if len(sweep) == 1 and key == "concurrency":
                advice.append("Only one concurrency level: sweep several (e.g. --concurrency 1 8 32 64) to find the knee.")
            continue
        peak = max(_rps(r) for r in sweep)
        knee = next(r for r in sweep if _rps(r) >= KNEE * peak)
        last, prev = sweep[-1], sweep[-2]
        if knee is last:
            gain = _rps(last) / _rps(prev) if _rps(prev) else 0
            if gain > 1.05:
                advice.append(f"Not saturated yet: throughput still grew {gain:.2f}x from {prev.name} to {last.name}; "
                              f"try higher {key}.")
            continue
        best["knee"] = {"run": knee.name, "value": _rps(knee), "peak": peak}
        higher = sweep[-1]
        lat = knee.dist("latency_s").mean
        lat_hi = higher.dist("latency_s").mean
        more = f" and {lat_hi / lat:.1f}x its mean latency" if lat and lat_hi else ""
        advice.append(f"Saturated at {knee.name}: it reaches {_rps(knee) / peak:.0%} of the peak throughput "
                      f"({peak:.2f} req/s); {higher.name} adds {_rps(higher) / _rps(knee):.2f}x "
                      f"the throughput{more}. Serve near {knee.name}.")
