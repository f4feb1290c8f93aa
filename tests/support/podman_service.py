"""A real Podman API service for the container-launcher tests, and what runs in its containers.

`podman_api` (session fixture) starts `podman system service --time=0 unix://<tmp>/podman.sock`
and kills it by pid at the end. Images cannot be pulled here, so the tests use the local
busybox image built by scripts/setup-podman.sh and bind-mount this machine's Python
(read-only) into it: `host_python_volumes()`.

`DOUBLE_SERVER_SOURCE` is a stdlib HTTP server that speaks vLLM's health/profiling
endpoints and, on /stop_profile, copies a REAL recorded vLLM trace (tests/data) into the
mounted trace folder. It stands in for vLLM where booting a real one is too slow; tests
that use it say `double` in their names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TEST_IMAGE = os.environ.get("PVP_TEST_IMAGE", "localhost/pvp-busybox:1")
SETUP_HINT = "run scripts/setup-podman.sh (installs podman + runc, writes containers.conf, builds the test image)"


def host_python() -> Path:
    """The base interpreter (not the venv shim): what runs inside the busybox container."""
    return Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def host_python_volumes(*extra: Path) -> dict[str, str]:
    """Host folders to mount read-only (same path inside) so the host's Python runs in the image."""
    volumes: dict[str, str] = {"/usr": "/usr"}
    for link in ("/lib", "/lib64"):
        if Path(link).exists():
            volumes[str(Path(link).resolve())] = link  # merged /usr: /lib -> /usr/lib
    for path in (Path(sys.base_prefix), *extra):
        resolved = str(Path(path).resolve())
        if not resolved.startswith("/usr/"):
            volumes[resolved] = resolved
    return volumes


DOUBLE_SERVER_SOURCE = r'''
"""Stand-in for a vLLM OpenAI server: /health, /v1/models, /start_profile, /stop_profile."""
import argparse, json, os, shutil, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--host", default="0.0.0.0"); p.add_argument("--port", type=int, default=8000)
p.add_argument("--served-model-name"); p.add_argument("--profiler-config")
a, rest = p.parse_known_args()
mode = os.environ.get("DOUBLE_MODE", "serve")
print(f"double server: model={a.model} args={rest} mode={mode}", flush=True)
if mode == "exit":
    print("fatal: cannot load model; token in use was " + os.environ.get("HF_TOKEN", "<none>"), flush=True)
    sys.exit(3)
trace_dir = json.loads(a.profiler_config)["torch_profiler_dir"] if a.profiler_config else os.environ.get("VLLM_TORCH_PROFILER_DIR")
recorded = os.environ.get("DOUBLE_RECORDED_TRACE")
profiling = {"on": False}

class H(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode(); self.send_response(code)
        self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        if self.path == "/health":
            return self._send(503 if mode == "never-healthy" else 200, {})
        if self.path == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": a.served_model_name or a.model, "object": "model"}]})
        self._send(404, {"error": self.path})
    def do_POST(self):
        if self.path == "/start_profile":
            profiling["on"] = True; return self._send(200, {})
        if self.path == "/stop_profile":
            if not profiling["on"]:
                return self._send(400, {"error": "profiler not started"})
            profiling["on"] = False
            os.makedirs(trace_dir, exist_ok=True)
            shutil.copyfile(recorded, os.path.join(trace_dir, f"rank0.{time.time_ns()}.pt.trace.json.gz"))
            return self._send(200, {})
        self._send(404, {"error": self.path})
    def log_message(self, fmt, *args):
        print("request:", fmt % args, flush=True)

ThreadingHTTPServer((a.host, a.port), H).serve_forever()
'''


def write_double_server(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vllm_double_server.py"
    path.write_text(DOUBLE_SERVER_SOURCE)
    return path


def _podman_ready() -> str | None:
    """None when podman and the test image are usable, else why not."""
    if shutil.which("podman") is None:
        return f"podman is not installed; {SETUP_HINT}"
    probe = subprocess.run(["podman", "image", "exists", TEST_IMAGE], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"test image {TEST_IMAGE} missing; {SETUP_HINT}"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker SDK is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def podman_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Podman Docker-compatible API started for this session (killed by pid after)."""
    why_not = _podman_ready()
    if why_not:
        pytest.skip(why_not)
    folder = tmp_path_factory.mktemp("podman-api")
    sock = folder / "podman.sock"
    log = open(folder / "service.log", "w")
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 30
        import docker

        while True:
            if sock.exists():
                try:
                    docker.DockerClient(base_url=url).ping()
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
            if service.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"podman system service did not come up: {(folder / 'service.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        try:  # our containers must not outlive the session, whatever a test did
            import docker

            client = docker.DockerClient(base_url=url)
            for c in client.containers.list(all=True, filters={"label": "pytest-vllm-profile=1"}):
                c.remove(force=True)
        except Exception:  # noqa: BLE001 - service already gone
            pass
        service.terminate()
        try:
            service.wait(15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(5)
        log.close()


@pytest.fixture(scope="session")
def podman_client(podman_api: str):
    import docker

    client = docker.DockerClient(base_url=podman_api)
    yield client
    client.close()
