"""The timed pass against the REAL vLLM CPU server (tiny 4-layer Qwen3, eager).

All but the last test share the session's server (tests/support/cpu_vllm.py); the last one boots a
second server whose engine sleeps in every scheduler step (a REAL injected CPU delay, see
tests/support/scheduler_delay.py) and shows the timed pass sees it in TPOT and ITL.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import httpx
import pytest

from pytest_vllm_profile.latency import LoadShape, TimedPassResult
from pytest_vllm_profile.launchers.base import RunningServer
from pytest_vllm_profile.launchers.process import ProcessLauncher
from pytest_vllm_profile.timed_pass import run_timed_pass, timed_pass_of
from pytest_vllm_profile.token_prompts import count_tokens, exact_length_prompts
from pytest_vllm_profile.workload import Workload
from support.cpu_vllm import tiny_server_spec
from support.scheduler_delay import scheduler_delay_env, write_scheduler_delay_site

pytestmark = pytest.mark.cpu_vllm

PROMPT = "What is the capital of France?"
INJECTED_DELAY_MS = 30.0


def _server(cpu_vllm_server: tuple[ProcessLauncher, RunningServer]) -> RunningServer:
    return cpu_vllm_server[1]


def _timed(server: RunningServer, shape: LoadShape, prompts: list[str] | None = None) -> TimedPassResult:
    return run_timed_pass(server.base_url, server.model_name, shape, prompts or [PROMPT])


def test_timed_pass_measures_ttft_tpot_itl_per_request(cpu_vllm_server) -> None:
    server = _server(cpu_vllm_server)
    shape = LoadShape(max_tokens=8, num_requests=2, repeats=2)
    result = _timed(server, shape)
    with httpx.Client(timeout=60) as client:
        prompt_tokens = count_tokens(client, server.base_url, server.model_name, PROMPT)
    assert len(result.runs) == 2 and all(len(run.requests) == 2 for run in result.runs)
    for run in result.runs:
        assert run.failed_requests == 0
        for req in run.requests:
            # ignore_eos + max_tokens: exactly 8 tokens, one streamed chunk each on this server
            assert req.output_tokens == 8 and req.token_chunks == 8 and len(req.itl_ms) == 7
            assert req.prompt_tokens == prompt_tokens
            assert 0 < req.ttft_ms < req.e2e_ms < 60_000
            assert all(gap > 0 for gap in req.itl_ms)
            assert req.tpot_ms == pytest.approx((req.e2e_ms - req.ttft_ms) / 7)
        # one request at a time: the run lasts at least the sum of its requests
        assert run.duration_s * 1e3 >= sum(r.e2e_ms for r in run.requests)
        assert run.output_tokens_per_s == pytest.approx(16 / run.duration_s)
        assert run.requests_per_s == pytest.approx(2 / run.duration_s)
    itl = result.distribution("itl_ms")
    assert itl is not None and itl.count == 2 * 2 * 7
    print(
        f"tiny CPU server: TTFT median {result.distribution('ttft_ms').median:.1f} ms, "  # type: ignore[union-attr]
        f"ITL median {itl.median:.1f} ms, p90 {itl.percentile(90):.1f} ms"
    )


def test_concurrency_two_keeps_two_requests_in_flight(cpu_vllm_server) -> None:
    server = _server(cpu_vllm_server)
    result = _timed(server, LoadShape(max_tokens=16, num_requests=4, concurrency=2, repeats=1))
    run = result.runs[0]
    assert len(run.requests) == 4 and all(r.output_tokens == 16 for r in run.requests)
    # overlapping requests: the run is shorter than its requests laid end to end
    assert run.duration_s * 1e3 < 0.8 * sum(r.e2e_ms for r in run.requests)


def test_exact_input_length_prompts_tokenize_to_that_length(cpu_vllm_server) -> None:
    server = _server(cpu_vllm_server)
    with httpx.Client(timeout=60) as client:
        prompts = exact_length_prompts(client, server.base_url, server.model_name, input_len=40, count=3)
        counts = [count_tokens(client, server.base_url, server.model_name, p) for p in prompts]
        first = [
            client.post(server.base_url + "/tokenize", json={"model": server.model_name, "prompt": p}).json()["tokens"][
                :4
            ]
            for p in prompts
        ]
    assert counts == [40, 40, 40]
    assert len({tuple(f) for f in first}) == 3  # distinct starts: no prefix-cache hits between them
    result = _timed(server, LoadShape(max_tokens=4, num_requests=3, repeats=1), prompts)
    assert [r.prompt_tokens for r in result.runs[0].requests] == [40, 40, 40]  # as the server counted them


def test_chat_completions_with_exact_input_length_from_a_marker(cpu_vllm_server) -> None:
    server = _server(cpu_vllm_server)
    workload = Workload.from_marker_kwargs(
        "t::chat", (), {"model": "tiny", "api": "chat", "input_len": 30, "max_tokens": 6, "concurrency": 2}
    )
    result = timed_pass_of(workload, server.base_url, server.model_name, repeats=1)
    reqs = result.runs[0].requests
    assert result.prompt_tokens == (30, 30) and result.shape.api == "chat" and result.shape.concurrency == 2
    assert [r.prompt_tokens for r in reqs] == [30, 30]  # the templated conversation, as the server counted it
    assert all(r.output_tokens == 6 and r.tpot_ms is not None for r in reqs)


def test_constant_request_rate_spaces_the_requests(cpu_vllm_server) -> None:
    server = _server(cpu_vllm_server)
    result = _timed(server, LoadShape(max_tokens=2, num_requests=3, request_rate=4.0, arrival="constant", repeats=1))
    run = result.runs[0]
    assert len(run.requests) == 3
    assert run.duration_s >= 0.75  # the last request is sent 3 / 4 s after the start


def test_injected_scheduler_delay_raises_tpot_and_itl(
    cpu_vllm_server, cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    """A REAL 30 ms sleep in each engine scheduler step (sitecustomize on the server's PYTHONPATH)."""
    shape = LoadShape(max_tokens=12, num_requests=2, repeats=2)
    plain = _timed(_server(cpu_vllm_server), shape)
    site = write_scheduler_delay_site(tmp_path / "site", INJECTED_DELAY_MS)
    log = tmp_path / "patched.log"
    traces = tmp_path / "traces"
    traces.mkdir()
    spec = tiny_server_spec(tiny_qwen3_model, traces)
    spec.env.update(scheduler_delay_env(site, INJECTED_DELAY_MS, log))
    launcher = ProcessLauncher(spec, python=cpu_vllm_python)
    delayed_server = launcher.start()
    try:
        delayed = _timed(delayed_server, shape)
    finally:
        launcher.stop()
    assert "patched Scheduler.schedule +30.0 ms" in log.read_text()  # the delay really was in the engine
    rise = {
        m: statistics.median(delayed.samples(m)) - statistics.median(plain.samples(m))  # type: ignore[arg-type]
        for m in ("tpot_ms", "itl_ms")
    }
    print(
        f"injected {INJECTED_DELAY_MS} ms per scheduler step: TPOT +{rise['tpot_ms']:.1f} ms, "
        f"ITL +{rise['itl_ms']:.1f} ms (plain ITL median {statistics.median(plain.samples('itl_ms')):.1f} ms)"
    )
    # one scheduler step per output token: each token arrives about one delay later
    for metric, value in rise.items():
        assert 0.6 * INJECTED_DELAY_MS < value < 1.6 * INJECTED_DELAY_MS, (metric, value)
