"""The timed pass's latency and throughput as history metrics, from made-up client timestamps
(the pure half of the timed pass; tests/unit/test_latency_metrics.py checks the statistics)."""

from __future__ import annotations

import pytest

from pytest_vllm_profile.history.changepoints import ChangePoint
from pytest_vllm_profile.history.gate import SeriesChange
from pytest_vllm_profile.history.metrics import metrics_of_test, timed_pass_metrics
from pytest_vllm_profile.history.store import RunRecord, Series
from pytest_vllm_profile.latency import LoadShape, RequestTiming, TimedPassResult, run_latency
from support.report_inputs import real_results


def _timing(chunks: list[float]) -> RequestTiming:
    return RequestTiming(sent_s=0.0, token_chunk_s=tuple(chunks), prompt_tokens=8, output_tokens=len(chunks))


def test_timed_pass_metrics_are_pooled_latencies_and_median_throughputs() -> None:
    runs = (run_latency(0, [_timing([0.1, 0.2, 0.3])], 0.3), run_latency(1, [_timing([0.2, 0.24, 0.28])], 0.3))
    m = timed_pass_metrics(TimedPassResult(shape=LoadShape(repeats=2), runs=runs))
    assert m["latency.ttft.median_ms"] == (pytest.approx(150.0), "ms")  # 100 and 200 ms pooled
    assert m["latency.itl.median_ms"][0] == pytest.approx(70.0)  # 100, 100, 40, 40
    assert m["throughput.output_tokens.median_per_s"] == (pytest.approx(10.0), "per_s")
    assert {"latency.tpot.p90_ms", "latency.e2e.median_ms", "throughput.requests.median_per_s"} <= set(m)


def test_results_without_a_timed_pass_have_no_timed_pass_metrics() -> None:
    names = set(metrics_of_test(real_results().tests[0]))
    assert "latency.request.median_s" in names
    assert not any(n.startswith(("latency.ttft", "throughput.")) for n in names)


@pytest.mark.parametrize(
    ("unit", "before", "after", "slower"),
    [
        ("us", 100.0, 104.0, True),
        ("us", 104.0, 100.0, False),
        ("per_s", 100.0, 96.0, True),
        ("per_s", 96.0, 100.0, False),
        ("count", 10.0, 11.0, False),
    ],
)
def test_a_slowdown_is_a_rising_time_or_a_falling_throughput(
    unit: str, before: float, after: float, slower: bool
) -> None:
    run = RunRecord(1, "2026-01-01T00:00:00Z", "abc1234def", "0.26.0", "H100", "r")
    series = Series("H100", "t.py::a", "throughput.output_tokens.median_per_s", unit, [run], [after])
    assert SeriesChange(series, ChangePoint(0, 1.0, 0.005, before, after)).is_slowdown is slower
