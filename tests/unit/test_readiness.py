"""launchers.readiness: the one wait loop every launcher uses, against real HTTP servers on
localhost (`http_double`: a stdlib server standing in for vLLM's /health and /v1/models) and a
real child process that dies."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers.base import free_port
from pytest_vllm_profile.launchers.readiness import (
    FIRST_POLL_S,
    MAX_POLL_S,
    ReadinessTimeout,
    wait_until_ready,
)


@dataclass
class HttpDouble:
    """Answers /health with 503 for the first `not_ready_polls` requests, then 200."""

    not_ready_polls: int
    models_body: bytes = json.dumps({"object": "list", "data": [{"id": "tiny-qwen3"}]}).encode()
    health_times: list[float] = field(default_factory=list)
    base_url: str = ""


@pytest.fixture
def http_double() -> Iterator[HttpDouble]:
    double = HttpDouble(not_ready_polls=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path == "/health":
                double.health_times.append(time.monotonic())
                ready = len(double.health_times) > double.not_ready_polls
                self._answer(200 if ready else 503, b"" if ready else b"booting")
            elif self.path == "/v1/models":
                self._answer(200, double.models_body)
            else:
                self._answer(404, b"")

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    double.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()


def test_http_double_ready_after_4_polls_returns_the_models_with_growing_intervals(http_double: HttpDouble) -> None:
    http_double.not_ready_polls = 4
    checks = []
    models = wait_until_ready(http_double.base_url, 30.0, still_starting=lambda: checks.append(1))
    assert models == ["tiny-qwen3"]
    assert len(http_double.health_times) == 5  # 4 answered 503, the 5th 200
    assert len(checks) == 5  # the launcher's own check runs before every poll
    gaps = [b - a for a, b in pairwise(http_double.health_times)]
    assert gaps[0] >= FIRST_POLL_S * 0.9
    assert all(later >= earlier * 0.9 for earlier, later in pairwise(gaps))  # backs off ...
    assert max(gaps) <= MAX_POLL_S + 0.5  # ... but never waits long between polls


def test_http_double_never_ready_times_out_naming_the_url_the_seconds_and_the_last_answer(
    http_double: HttpDouble,
) -> None:
    http_double.not_ready_polls = 10**6
    started = time.monotonic()
    with pytest.raises(ReadinessTimeout) as info:
        wait_until_ready(http_double.base_url, 2.0)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 4.0
    message = str(info.value)
    assert message == (
        f"vLLM server at {http_double.base_url} is not reachable/healthy after 2 s (/health answered HTTP 503: booting)"
    )
    assert isinstance(info.value, LauncherError) and info.value.timeout_s == 2.0
    assert len(http_double.health_times) >= 3


def test_http_double_without_json_models_is_not_ready(http_double: HttpDouble) -> None:
    http_double.models_body = b"<html>another server</html>"
    with pytest.raises(
        ReadinessTimeout, match=r"after 1 s \(/v1/models did not answer JSON \(is this a vLLM server\?\)\)"
    ):
        wait_until_ready(http_double.base_url, 1.0)


def test_nothing_listening_times_out_with_the_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ReadinessTimeout, match=rf"{url} is not reachable/healthy after 1 s \(ConnectError"):
        wait_until_ready(url, 1.0)


def test_real_child_process_that_dies_is_reported_at_once_not_after_the_timeout() -> None:
    # The launcher's still_starting check sees the exit at the next poll (<= MAX_POLL_S later),
    # while nothing ever listens on the URL: the 60 s timeout must not be waited out.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5); raise SystemExit(3)"])

    def child_alive() -> None:
        code = child.poll()
        if code is not None:
            raise LauncherError(f"vLLM server exited with code {code} during startup")

    started = time.monotonic()
    try:
        with pytest.raises(LauncherError, match="exited with code 3 during startup"):
            wait_until_ready(f"http://127.0.0.1:{free_port()}", 60.0, still_starting=child_alive)
    finally:
        child.kill()
        child.wait()
    assert time.monotonic() - started < 0.5 + MAX_POLL_S + 1.5
