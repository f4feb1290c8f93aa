"""The timed pass: streamed requests against a running server with the profiler OFF.

What a user of vLLM waits for is measured here, not in the profiled pass (the profiler slows
the server down). The client mirrors `vllm bench serve` (see `latency` for the definitions):
streaming with `stream_options.include_usage`, one timestamp per chunk carrying `choices`,
at most `concurrency` requests in flight, optional Poisson/constant arrivals, warmup requests
sent first and dropped. The numbers come from `latency.run_latency`.

A chunk's timestamp is when this client reads it, as in vllm bench: a client starved of CPU
reads several chunks at once and their gaps shrink towards 0 (seen on the shared 2-core
machine: ITL median 0.0 ms in one run, 10-15 ms in others, every chunk still one token), while
TTFT, e2e and TPOT, which span the request, are not shortened by it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from .errors import CaptureError, ServerErrorAnswer
from .latency import LoadShape, RequestTiming, TimedPassResult, arrival_offsets, run_latency
from .token_prompts import count_tokens, exact_length_prompts
from .workload import Workload

DEFAULT_TIMEOUT_S = 600.0


def request_body(shape: LoadShape, model: str, prompt: str) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of one streamed request of `shape`."""
    body: dict[str, Any] = {
        "model": model,
        "temperature": shape.temperature,
        "ignore_eos": shape.ignore_eos,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if shape.api == "chat":
        body.update(messages=[{"role": "user", "content": prompt}], max_completion_tokens=shape.max_tokens)
        return "/v1/chat/completions", body
    body.update(prompt=prompt, max_tokens=shape.max_tokens)
    return "/v1/completions", body


def parse_stream_line(line: str) -> dict[str, Any] | None:
    """The JSON of one server-sent-event line, or None for comments, blanks and `[DONE]`."""
    line = line.strip()
    if not line or line.startswith(":") or not line.startswith("data:"):
        return None
    payload = line[len("data:") :].strip()
    if payload == "[DONE]":
        return None
    try:
        data: dict[str, Any] = json.loads(payload)
    except ValueError:
        raise CaptureError(f"server sent a stream line that is not JSON: {payload[:200]!r}") from None
    return data


async def stream_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> RequestTiming:
    """Send one streamed request; timestamps of its token chunks and the usage it reported."""
    chunks: list[float] = []
    prompt_tokens = output_tokens = None
    sent = time.perf_counter()
    try:
        async with client.stream("POST", url, json=body) as answer:
            if answer.status_code != 200:
                text = (await answer.aread()).decode(errors="replace")
                return RequestTiming(sent_s=sent, token_chunk_s=(), error=f"HTTP {answer.status_code}: {text[:300]}")
            async for line in answer.aiter_lines():
                data = parse_stream_line(line)
                if data is None:
                    continue
                if data.get("choices"):
                    chunks.append(time.perf_counter())
                elif usage := data.get("usage"):
                    output_tokens = usage.get("completion_tokens")
                    prompt_tokens = usage.get("prompt_tokens")
                if "error" in data:
                    return RequestTiming(sent_s=sent, token_chunk_s=tuple(chunks), error=str(data["error"])[:300])
    except httpx.HTTPError as exc:
        return RequestTiming(sent_s=sent, token_chunk_s=tuple(chunks), error=f"{type(exc).__name__}: {exc}")
    return RequestTiming(
        sent_s=sent,
        token_chunk_s=tuple(chunks),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        error=None if chunks else "stream ended without a token chunk",
    )


async def _run_requests(
    client: httpx.AsyncClient, base_url: str, shape: LoadShape, model: str, prompts: list[str], count: int, seed: int
) -> tuple[list[RequestTiming], float]:
    """`count` requests (prompts cycled) under the shape's concurrency and arrivals; (timings, duration)."""
    limit = asyncio.Semaphore(shape.concurrency)
    offsets = arrival_offsets(count, shape.request_rate, shape.arrival, seed)

    async def one(i: int, start: float) -> RequestTiming:
        delay = start + offsets[i] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        path, body = request_body(shape, model, prompts[i % len(prompts)])
        async with limit:
            return await stream_request(client, base_url.rstrip("/") + path, body)

    start = time.perf_counter()
    timings = await asyncio.gather(*(one(i, start) for i in range(count)))
    return list(timings), time.perf_counter() - start


async def _timed_pass(
    base_url: str, model: str, shape: LoadShape, prompts: list[str], timeout_s: float
) -> TimedPassResult:
    limits = httpx.Limits(max_connections=max(shape.concurrency, 1) + 1)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        if shape.warmup_requests:
            warm, _ = await _run_requests(client, base_url, shape, model, prompts, shape.warmup_requests, shape.seed)
            failed = [t.error for t in warm if t.error]
            if failed:
                raise CaptureError(f"warmup request to {base_url} failed: {failed[0]}")
        runs = []
        for repeat in range(shape.repeats):
            # Each repeat its own arrival draw (seed + repeat): the same sequence every session.
            timings, duration = await _run_requests(
                client, base_url, shape, model, prompts, shape.num_requests, shape.seed + repeat
            )
            failed = [t.error for t in timings if t.error]
            if failed:
                # a 5xx: the server may be dying, which the caller's watch then names first
                error = ServerErrorAnswer if failed[0].startswith("HTTP 5") else CaptureError
                raise error(
                    f"timed repeat {repeat}: {len(failed)} of {len(timings)} requests to "
                    f"{base_url} failed; first: {failed[0]}"
                )
            runs.append(run_latency(repeat, timings, duration))
    return TimedPassResult(shape=shape, runs=tuple(runs))


def run_timed_pass(
    base_url: str,
    model: str,
    shape: LoadShape,
    prompts: list[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    prompt_tokens: tuple[int, ...] = (),
) -> TimedPassResult:
    """Warmup, then `shape.repeats` timed repeats of `shape.num_requests` streamed requests.

    prompts: cycled over the requests (e.g. from `token_prompts.exact_length_prompts`).
    The server's profiler must be off (no /start_profile around this). Raises CaptureError
    when a request fails: a timed pass with missing requests would report a wrong throughput.
    """
    if not prompts:
        raise ValueError("the timed pass needs at least one prompt")
    result = asyncio.run(_timed_pass(base_url, model, shape, prompts, timeout_s))
    return TimedPassResult(shape=result.shape, runs=result.runs, prompt_tokens=prompt_tokens)


def timed_pass_of(
    workload: Workload, base_url: str, model: str, repeats: int, timeout_s: float = DEFAULT_TIMEOUT_S
) -> TimedPassResult:
    """The timed pass a marker declares: its load shape, its prompts (or prompts of exactly
    `input_len` tokens built on this server), `repeats` timed repeats. `model`: the name requests use."""
    shape = workload.load_shape(repeats)
    with httpx.Client(timeout=timeout_s) as client:
        if workload.input_len is not None:
            prompts = exact_length_prompts(
                client, base_url, model, workload.input_len, count=shape.num_requests, api=shape.api
            )
        else:
            prompts = list(workload.prompts)
        tokens = tuple(count_tokens(client, base_url, model, p, shape.api) for p in prompts)
    return run_timed_pass(base_url, model, shape, prompts, timeout_s=timeout_s, prompt_tokens=tokens)
