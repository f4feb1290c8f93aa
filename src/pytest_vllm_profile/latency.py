"""User-facing latency of a timed (unprofiled) pass: TTFT, TPOT, ITL, end-to-end, throughput.

Pure computation from client-side timestamps, with no HTTP, so it is tested on made-up
timestamps; `timed_pass` records the timestamps against a real server. The definitions are
those of `vllm bench serve` (vllm/benchmarks/lib/endpoint_request_func.py and
vllm/benchmarks/serve.py `calculate_metrics`, read in vLLM 0.32):

* a request's clock starts when it is sent; every streamed chunk that has `choices` is a token
  chunk (its text may be empty, e.g. a special token); the trailing usage chunk is not;
* TTFT = first token chunk - sent;
* ITL = the gaps between consecutive token chunks (one per chunk after the first);
* end-to-end latency = LAST TOKEN CHUNK - sent (not the end of the stream: the usage chunk and
  `[DONE]` do not count), so e2e - ttft == sum(itl);
* TPOT = (e2e - ttft) / (output_tokens - 1), only for requests with more than one output token
  (output_tokens from the streamed usage, `stream_options.include_usage`);
* per run: request throughput = completed requests / run duration, output throughput = output
  tokens / run duration, where the duration runs from the start of the run (before the first
  arrival gap, when there is a request rate) to the last answer (`benchmark_duration`);
* statistics: mean, median, std and percentiles (numpy's linear `np.percentile`), in ms.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

import msgspec
import numpy as np

# Percentiles every distribution reports (`vllm bench serve` defaults to 99 only; 50 and 90 are
# what a regression check on a handful of samples can still judge).
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)

LatencyMetric = Literal["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"]
LATENCY_METRICS: tuple[LatencyMetric, ...] = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
ThroughputMetric = Literal["output_tokens_per_s", "requests_per_s", "total_tokens_per_s"]
THROUGHPUT_METRICS: tuple[ThroughputMetric, ...] = ("output_tokens_per_s", "requests_per_s", "total_tokens_per_s")

ArrivalKind = Literal["poisson", "constant"]


class RequestTiming(msgspec.Struct, kw_only=True, frozen=True):
    """What the client saw of one streamed request (perf_counter seconds)."""

    sent_s: float
    token_chunk_s: tuple[float, ...]  # arrival of every chunk carrying `choices`, in order
    prompt_tokens: int | None = None  # from the streamed usage
    output_tokens: int | None = None  # from the streamed usage
    error: str | None = None  # set when the request failed (HTTP error, no token chunk)


class RequestLatency(msgspec.Struct, kw_only=True, frozen=True):
    """One request's latency samples, in milliseconds."""

    ttft_ms: float
    e2e_ms: float
    tpot_ms: float | None  # None when the request produced at most one token
    itl_ms: tuple[float, ...]
    prompt_tokens: int | None
    output_tokens: int
    token_chunks: int  # chunks with `choices`; == output_tokens when each chunk carries one token


class Distribution(msgspec.Struct, kw_only=True, frozen=True):
    """Statistics of a set of samples (same unit as the samples)."""

    count: int
    mean: float
    median: float
    std: float
    min: float
    max: float
    percentiles: dict[str, float]  # "p50", "p90", "p99" -> value

    def percentile(self, p: float) -> float:
        return self.percentiles[percentile_key(p)]


class RunLatency(msgspec.Struct, kw_only=True, frozen=True):
    """One timed repeat: every request's samples plus the run's throughput."""

    repeat: int
    duration_s: float
    requests: tuple[RequestLatency, ...]
    failed_requests: int
    output_tokens_per_s: float
    requests_per_s: float
    total_tokens_per_s: float  # (prompt + output tokens) / duration; prompt tokens as the server counted them

    def samples(self, metric: LatencyMetric) -> list[float]:
        """Every sample of `metric` in this run (ITL: every gap of every request)."""
        return metric_samples(self.requests, metric)


class LoadShape(msgspec.Struct, kw_only=True, frozen=True):
    """How the timed pass loads the server (what `vllm bench serve` calls the workload)."""

    api: Literal["completions", "chat"] = "completions"
    max_tokens: int = 10
    ignore_eos: bool = True
    temperature: float = 0.0
    num_requests: int = 1  # requests per timed repeat
    concurrency: int = 1  # most requests in flight at once
    request_rate: float | None = None  # requests/s; None: all sent at once (bounded by concurrency)
    arrival: ArrivalKind = "poisson"
    seed: int = 0
    warmup_requests: int = 1  # sent before the timed repeats, results dropped
    repeats: int = 3


class TimedPassResult(msgspec.Struct, kw_only=True, frozen=True):
    """Every timed repeat of one workload, and the pooled statistics over all of them."""

    shape: LoadShape
    runs: tuple[RunLatency, ...]
    prompt_tokens: tuple[int, ...] = ()  # tokens of each distinct prompt sent (as /tokenize counted)

    def samples(self, metric: LatencyMetric) -> list[float]:
        """All samples of `metric` over all runs (pooled)."""
        return [v for run in self.runs for v in run.samples(metric)]

    def distribution(self, metric: LatencyMetric) -> Distribution | None:
        return distribution(self.samples(metric))

    def throughput(self, metric: ThroughputMetric) -> Distribution | None:
        """Distribution of a per-run throughput over the runs."""
        return distribution([getattr(run, metric) for run in self.runs])

    def run_medians(self, metric: LatencyMetric) -> list[float]:
        """Each run's median of `metric`: the repeat-to-repeat noise a comparison judges against."""
        return [float(np.median(s)) for run in self.runs if (s := run.samples(metric))]


def percentile_key(p: float) -> str:
    return f"p{p:g}"


def request_latency(timing: RequestTiming) -> RequestLatency:
    """TTFT, ITL, e2e and TPOT of one successful request, as `vllm bench serve` measures them."""
    if timing.error is not None:
        raise ValueError(f"request failed ({timing.error}): it has no latency")
    chunks = timing.token_chunk_s
    if not chunks:
        raise ValueError("request received no token chunk: TTFT is undefined")
    if any(b < a for a, b in zip((timing.sent_s, *chunks[:-1]), chunks, strict=True)):
        raise ValueError("token chunk timestamps go backwards: they must be monotonic (perf_counter)")
    ttft = chunks[0] - timing.sent_s
    e2e = chunks[-1] - timing.sent_s
    itl = tuple((b - a) * 1e3 for a, b in pairwise(chunks))
    # Without usage, vllm bench counts tokens by re-tokenizing the text; the chunk count is the
    # closest the client has (one token per chunk unless the server batches stream output).
    output_tokens = timing.output_tokens if timing.output_tokens is not None else len(chunks)
    tpot = (e2e - ttft) / (output_tokens - 1) * 1e3 if output_tokens > 1 else None
    return RequestLatency(
        ttft_ms=ttft * 1e3,
        e2e_ms=e2e * 1e3,
        tpot_ms=tpot,
        itl_ms=itl,
        prompt_tokens=timing.prompt_tokens,
        output_tokens=output_tokens,
        token_chunks=len(chunks),
    )


def run_latency(repeat: int, timings: list[RequestTiming], duration_s: float) -> RunLatency:
    """One timed repeat's per-request samples and throughput; failed requests are counted, not timed."""
    if duration_s <= 0:
        raise ValueError(f"run duration must be > 0 s, got {duration_s}")
    done = [request_latency(t) for t in timings if t.error is None and t.token_chunk_s]
    output_tokens = sum(r.output_tokens for r in done)
    prompt_tokens = sum(r.prompt_tokens or 0 for r in done)
    return RunLatency(
        repeat=repeat,
        duration_s=duration_s,
        requests=tuple(done),
        failed_requests=len(timings) - len(done),
        output_tokens_per_s=output_tokens / duration_s,
        requests_per_s=len(done) / duration_s,
        total_tokens_per_s=(prompt_tokens + output_tokens) / duration_s,
    )


def metric_samples(requests: tuple[RequestLatency, ...] | list[RequestLatency], metric: LatencyMetric) -> list[float]:
    if metric == "itl_ms":
        return [gap for r in requests for gap in r.itl_ms]
    if metric == "tpot_ms":
        return [r.tpot_ms for r in requests if r.tpot_ms is not None]
    if metric in ("ttft_ms", "e2e_ms"):
        return [getattr(r, metric) for r in requests]
    raise ValueError(f"unknown latency metric {metric!r}; expected one of {', '.join(LATENCY_METRICS)}")


def distribution(values: list[float], percentiles: tuple[float, ...] = PERCENTILES) -> Distribution | None:
    """Mean, median, std (population, as numpy's default), min, max and percentiles; None when empty."""
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    return Distribution(
        count=len(arr),
        mean=float(arr.mean()),
        median=float(np.median(arr)),
        std=float(arr.std()),
        min=float(arr.min()),
        max=float(arr.max()),
        percentiles={percentile_key(p): float(np.percentile(arr, p)) for p in percentiles},
    )


def arrival_offsets(
    count: int, request_rate: float | None, arrival: ArrivalKind = "poisson", seed: int = 0
) -> list[float]:
    """When each request is sent, in seconds after the first, as `vllm bench serve` schedules them.

    No rate (or an infinite one): all at 0. "constant": i / rate. "poisson": exponential gaps
    (gamma, shape 1) drawn from a generator seeded with `seed`, accumulated, then rescaled so the
    last offset is count / rate like vllm bench does (it keeps throughput stable across seeds).
    vllm bench seeds numpy's global generator; this one is private so other code cannot shift it.
    """
    if count < 0:
        raise ValueError(f"request count must be >= 0, got {count}")
    if request_rate is None or math.isinf(request_rate):
        return [0.0] * count
    if not request_rate > 0:
        raise ValueError(f"request rate must be > 0 requests/s, got {request_rate}")
    if arrival == "constant":
        gaps = [1.0 / request_rate] * count
    elif arrival == "poisson":
        gaps = list(np.random.default_rng(seed).exponential(1.0 / request_rate, size=count))
    else:
        raise ValueError(f"unknown arrival {arrival!r}; expected 'poisson' or 'constant'")
    offsets = list(np.cumsum(gaps))
    if arrival == "poisson" and offsets and offsets[-1] > 0:
        scale = (count / request_rate) / offsets[-1]
        offsets = [o * scale for o in offsets]
    # Like vllm bench, the first request waits one gap too, and the run's clock starts before it.
    return [float(o) for o in offsets]
