"""TTFT / TPOT / ITL / throughput from made-up client timestamps (the pure half of the timed pass)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from pytest_vllm_profile.latency import (
    LoadShape,
    RequestTiming,
    TimedPassResult,
    arrival_offsets,
    distribution,
    request_latency,
    run_latency,
)
from pytest_vllm_profile.timed_pass import parse_stream_line, request_body


def _timing(sent: float, chunks: list[float], out: int | None, prompt: int | None = 8) -> RequestTiming:
    return RequestTiming(sent_s=sent, token_chunk_s=tuple(chunks), prompt_tokens=prompt, output_tokens=out)


def test_request_latency_follows_vllm_bench_definitions() -> None:
    # sent at 10.0; first token 0.25 s later, then gaps of 20, 30, 50 ms
    lat = request_latency(_timing(10.0, [10.25, 10.27, 10.30, 10.35], out=4))
    assert lat.ttft_ms == pytest.approx(250.0)
    assert lat.itl_ms == pytest.approx((20.0, 30.0, 50.0))
    assert lat.e2e_ms == pytest.approx(350.0)  # last token chunk, not the end of the stream
    assert lat.tpot_ms == pytest.approx((350.0 - 250.0) / 3)
    assert lat.e2e_ms - lat.ttft_ms == pytest.approx(sum(lat.itl_ms))
    assert lat.token_chunks == 4 and lat.output_tokens == 4


def test_tpot_divides_by_usage_tokens_not_chunks() -> None:
    # server sent 2 tokens per chunk: 3 chunks, 6 tokens by usage
    lat = request_latency(_timing(0.0, [0.1, 0.2, 0.3], out=6))
    assert len(lat.itl_ms) == 2
    assert lat.tpot_ms == pytest.approx(200.0 / 5)


def test_one_token_request_has_no_tpot() -> None:
    lat = request_latency(_timing(0.0, [0.1], out=1))
    assert lat.tpot_ms is None and lat.itl_ms == () and lat.e2e_ms == pytest.approx(lat.ttft_ms)


def test_missing_usage_falls_back_to_chunk_count() -> None:
    assert request_latency(_timing(0.0, [0.1, 0.2, 0.4], out=None)).output_tokens == 3


@pytest.mark.parametrize(
    ("timing", "why"),
    [
        (RequestTiming(sent_s=0.0, token_chunk_s=(), error="HTTP 500: boom"), "HTTP 500"),
        (RequestTiming(sent_s=0.0, token_chunk_s=()), "no token chunk"),
        (RequestTiming(sent_s=1.0, token_chunk_s=(1.2, 1.1)), "backwards"),
        (RequestTiming(sent_s=1.0, token_chunk_s=(0.5,)), "backwards"),
    ],
)
def test_unusable_timings_are_refused_with_the_cause(timing: RequestTiming, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        request_latency(timing)


def test_run_throughput_counts_completed_requests_and_their_tokens() -> None:
    timings = [
        _timing(0.0, [0.1, 0.2], out=2, prompt=10),
        _timing(0.0, [0.15, 0.3, 0.45], out=3, prompt=10),
        RequestTiming(sent_s=0.0, token_chunk_s=(), error="HTTP 503"),
    ]
    run = run_latency(0, timings, duration_s=0.5)
    assert run.failed_requests == 1 and len(run.requests) == 2
    assert run.requests_per_s == pytest.approx(4.0)
    assert run.output_tokens_per_s == pytest.approx(10.0)
    assert run.total_tokens_per_s == pytest.approx(50.0)
    assert sorted(run.samples("itl_ms")) == pytest.approx([100.0, 150.0, 150.0])
    with pytest.raises(ValueError, match="duration"):
        run_latency(0, timings, duration_s=0.0)


def test_distribution_uses_numpy_linear_percentiles() -> None:
    values = [5.0, 1.0, 3.0, 10.0, 2.0]
    d = distribution(values)
    assert d is not None
    assert (d.count, d.median, d.min, d.max) == (5, 3.0, 1.0, 10.0)
    assert d.mean == pytest.approx(4.2) and d.std == pytest.approx(float(np.std(values)))
    assert d.percentile(90) == pytest.approx(float(np.percentile(values, 90)))
    assert d.percentiles["p99"] == pytest.approx(float(np.percentile(values, 99)))
    assert distribution([]) is None


def test_pass_result_pools_samples_and_keeps_every_run() -> None:
    shape = LoadShape(repeats=2)
    runs = (
        run_latency(0, [_timing(0.0, [0.1, 0.2, 0.3], out=3)], 0.3),
        run_latency(1, [_timing(0.0, [0.2, 0.24, 0.28], out=3)], 0.3),
    )
    result = TimedPassResult(shape=shape, runs=runs)
    assert result.samples("ttft_ms") == pytest.approx([100.0, 200.0])
    assert len(result.samples("itl_ms")) == 4
    assert result.run_medians("itl_ms") == pytest.approx([100.0, 40.0])
    tput = result.throughput("output_tokens_per_s")
    assert tput is not None and tput.count == 2 and tput.median == pytest.approx(10.0)
    # every sample survives a round trip through the results-file encoding
    again = msgspec.json.decode(msgspec.json.encode(result), type=TimedPassResult)
    assert again == result


def test_arrivals_all_at_once_without_a_rate() -> None:
    assert arrival_offsets(3, None) == [0.0, 0.0, 0.0]
    assert arrival_offsets(2, float("inf")) == [0.0, 0.0]


def test_constant_arrivals_are_evenly_spaced() -> None:
    assert arrival_offsets(4, 2.0, "constant") == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_poisson_arrivals_are_seeded_and_scaled_to_count_over_rate() -> None:
    a = arrival_offsets(50, 10.0, "poisson", seed=1)
    assert a == arrival_offsets(50, 10.0, "poisson", seed=1)
    assert a != arrival_offsets(50, 10.0, "poisson", seed=2)
    assert a[-1] == pytest.approx(5.0)  # count / rate, as vllm bench rescales
    gaps = np.diff([0.0, *a])
    assert (gaps >= 0).all() and gaps.std() > 0.2 * gaps.mean()  # exponential, not constant
    with pytest.raises(ValueError, match="rate"):
        arrival_offsets(3, 0.0)


def test_request_bodies_stream_with_usage() -> None:
    path, body = request_body(LoadShape(max_tokens=7), "m", "hi")
    assert path == "/v1/completions" and body["prompt"] == "hi" and body["max_tokens"] == 7
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    path, body = request_body(LoadShape(api="chat", max_tokens=7), "m", "hi")
    assert path == "/v1/chat/completions" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["max_completion_tokens"] == 7 and body["ignore_eos"] is True


def test_stream_lines() -> None:
    assert parse_stream_line('data: {"choices": [{"text": "a"}]}') == {"choices": [{"text": "a"}]}
    assert parse_stream_line("data: [DONE]") is None
    assert parse_stream_line(": ping") is None
    assert parse_stream_line("") is None
