"""The container launcher against a REAL Podman API (started by the session) and real containers.

What is real: the Podman service and its Docker-compatible API, image lookup, container
create/start/stop/remove, the published port, the read-write trace mount, labels, env and
logs. The server inside the container is the host's Python (bind-mounted read-only into a
local busybox image) running either the recorded-trace double (`..._double_...` tests:
speaks vLLM's endpoints and copies a real recorded vLLM trace on /stop_profile) or a real
vLLM CPU server (`test_real_vllm_cpu_server_in_container...`, also marked cpu_vllm).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers.base import ServerSpec
from pytest_vllm_profile.launchers.container_engine import (
    LABEL,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_SESSION,
    cleanup_leftovers,
    engine_of,
    resolve_engine_url,
)
from pytest_vllm_profile.launchers.docker import ContainerOptions, DockerLauncher
from pytest_vllm_profile.launchers.vllm_args import ENV_STYLE, PROFILER_CONFIG_STYLE
from support.paths import DATA
from support.podman_service import (
    TEST_IMAGE,
    host_python,
    host_python_volumes,
    write_double_server,
)

RECORDED_TRACE = DATA / "cpu-eager-tiny4.rank0.pt.trace.json.gz"
FAKE_TOKEN = "hf_pvpTestSecret0123456789"


@pytest.fixture(autouse=True)
def _time_each_test(request: pytest.FixtureRequest):
    """Report each container test's wall time (docs/containers.md quotes these)."""
    started = time.monotonic()
    yield
    print(f"\n[timing] {request.node.name}: {time.monotonic() - started:.2f} s")


@pytest.fixture
def double_options(tmp_path: Path, podman_api: str) -> ContainerOptions:
    """Run the recorded-trace double with the host's Python inside the busybox image."""
    script_dir = tmp_path / "double"
    write_double_server(script_dir)
    volumes = host_python_volumes()
    volumes[str(script_dir)] = "/double"
    volumes[str(RECORDED_TRACE.parent.resolve())] = "/recorded"
    return ContainerOptions(
        image=TEST_IMAGE,
        base_url=podman_api,
        entrypoint=(str(host_python()), "/double/vllm_double_server.py"),
        model_as_flag=True,
        profiler_style=PROFILER_CONFIG_STYLE,
        shm_size="64m",
        volumes=volumes,
        extra_env={"DOUBLE_RECORDED_TRACE": f"/recorded/{RECORDED_TRACE.name}"},
        stop_timeout_s=2,
        session_id="test-session",
    )


def _spec(tmp_path: Path, **overrides) -> ServerSpec:
    values = dict(
        model="tiny-model",
        served_model_name="tiny",
        trace_dir=tmp_path / "traces",
        gpus=(),
        health_timeout_s=30.0,
        log_path=tmp_path / "server.log",
    )
    values.update(overrides)
    return ServerSpec(**values)


def _ours(client) -> list:
    return client.containers.list(all=True, filters={"label": f"{LABEL}=1"})


# -- engine URL and engine detection ------------------------------------------------------


def test_engine_url_order_explicit_then_docker_host_then_podman_socket_then_default(tmp_path: Path):
    runtime = tmp_path / "run"
    (runtime / "podman").mkdir(parents=True)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    assert resolve_engine_url(None, env) in ("unix:///var/run/docker.sock", "unix:///run/podman/podman.sock")
    with socket.socket(socket.AF_UNIX) as listening:  # a real socket file where Podman puts it
        listening.bind(str(runtime / "podman" / "podman.sock"))
        assert resolve_engine_url(None, env) == f"unix://{runtime}/podman/podman.sock"
        assert resolve_engine_url(None, {**env, "DOCKER_HOST": "tcp://10.0.0.1:2375"}) == "tcp://10.0.0.1:2375"
        assert resolve_engine_url("unix:///x.sock", {**env, "DOCKER_HOST": "tcp://h:1"}) == "unix:///x.sock"


@pytest.mark.podman
def test_real_podman_api_is_detected_as_podman(podman_client, podman_api: str):
    assert engine_of(podman_client.version()) == "podman"
    launcher = DockerLauncher(_spec(Path("/tmp")), ContainerOptions(base_url=podman_api))
    assert launcher.detect_engine() == "podman"


def test_engine_of_docker_version_answer_is_docker():
    docker_answer = {
        "Platform": {"Name": "Docker Engine - Community"},
        "Components": [{"Name": "Engine"}, {"Name": "containerd"}, {"Name": "runc"}],
    }
    assert engine_of(docker_answer) == "docker"


def test_unreachable_engine_gives_clear_error(tmp_path: Path):
    launcher = DockerLauncher(_spec(tmp_path), ContainerOptions(base_url=f"unix://{tmp_path}/none.sock"))
    with pytest.raises(LauncherError, match=r"cannot reach a container engine at unix://.*none\.sock"):
        launcher.start()


def test_env_style_puts_profiler_dir_in_env_and_secrets_by_name_are_redacted(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    spec = _spec(tmp_path, env={"MY_API_KEY": "sk-abcdef123"}, server_args=("--enforce-eager",))
    launcher = DockerLauncher(spec, ContainerOptions(model_as_flag=False))
    command = launcher.build_command(ENV_STYLE, "org/model")
    assert command[0] == "org/model" and "--profiler-config" not in command and command[-1] == "--enforce-eager"
    env = launcher.build_env(ENV_STYLE, model_is_local=False)
    assert env["VLLM_TORCH_PROFILER_DIR"] == "/vllm-traces" and "HF_HUB_OFFLINE" not in env
    assert "HF_TOKEN" not in env
    assert "sk-abcdef123" not in repr(env) and env.secret_values() == ["sk-abcdef123"]


def test_image_reference_with_registry_port_gets_latest_tag():
    assert ContainerOptions(image="localhost:5000/vllm").image_ref() == "localhost:5000/vllm:latest"
    assert ContainerOptions(image="vllm/vllm-openai:v0.9.0").image_ref() == "vllm/vllm-openai:v0.9.0"
    assert ContainerOptions(image="vllm/vllm-openai", tag="v0.11.0").image_ref() == "vllm/vllm-openai:v0.11.0"


# -- image presence, GPU requests ---------------------------------------------------------


@pytest.mark.podman
def test_missing_image_is_not_pulled_and_error_says_how(tmp_path: Path, podman_api: str, podman_client):
    before = {c.id for c in podman_client.containers.list(all=True)}
    options = ContainerOptions(image="localhost/pvp-absent", tag="9", base_url=podman_api, profiler_style=ENV_STYLE)
    with pytest.raises(LauncherError) as info:
        DockerLauncher(_spec(tmp_path), options).start()
    assert str(info.value) == (
        "image localhost/pvp-absent:9 not present locally; pull it yourself or pass --vllm-allow-pull"
    )
    assert {c.id for c in podman_client.containers.list(all=True)} == before


@pytest.mark.podman
def test_present_image_passes_the_check(podman_api: str, tmp_path: Path):
    DockerLauncher(_spec(tmp_path), ContainerOptions(image=TEST_IMAGE, base_url=podman_api)).ensure_image()


@pytest.mark.podman
def test_gpu_requests_per_engine_and_none_for_cpu(tmp_path: Path, podman_api: str, podman_client):
    on_podman = DockerLauncher(_spec(tmp_path, gpus=(0, 2)), ContainerOptions(base_url=podman_api))
    (request,) = on_podman._gpu_kwargs()["device_requests"]
    assert request["Driver"] == "cdi" and request["DeviceIDs"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=2"]
    all_gpus = DockerLauncher(_spec(tmp_path, gpus=None), ContainerOptions(base_url=podman_api))
    assert all_gpus._gpu_kwargs()["device_requests"][0]["DeviceIDs"] == ["nvidia.com/gpu=all"]
    on_docker = DockerLauncher(_spec(tmp_path, gpus=None), ContainerOptions(base_url=podman_api, gpu_request="nvidia"))
    (request,) = on_docker._gpu_kwargs()["device_requests"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert DockerLauncher(_spec(tmp_path, gpus=()), ContainerOptions(base_url=podman_api))._gpu_kwargs() == {}
    # The real API takes the CDI request at create time (no GPU here to run with it).
    created = podman_client.containers.create(TEST_IMAGE, ["true"], labels={LABEL: "1"}, **on_podman._gpu_kwargs())
    try:
        assert created.id
    finally:
        created.remove(force=True)


# -- a served container (recorded-trace double) -------------------------------------------


@pytest.mark.podman
def test_container_serves_recorded_trace_double_through_port_mount_labels(
    tmp_path: Path, double_options: ContainerOptions, podman_client, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    launcher = DockerLauncher(_spec(tmp_path), double_options)
    server = launcher.start()
    try:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.trace_dir == tmp_path / "traces" and server.model_name == "tiny"
        models = httpx.get(f"{server.base_url}/v1/models", timeout=5).json()
        assert models["data"][0]["id"] == "tiny"
        assert httpx.post(f"{server.base_url}/start_profile", timeout=5).status_code == 200
        assert httpx.post(f"{server.base_url}/stop_profile", timeout=5).status_code == 200
        (written,) = server.trace_dir.glob("rank0.*.pt.trace.json.gz")
        assert written.read_bytes() == RECORDED_TRACE.read_bytes()  # written in the container, read here
        assert "traceEvents" in json.loads(gzip.decompress(written.read_bytes()))

        container = podman_client.containers.get(launcher.container_name)
        labels = container.labels
        assert labels[LABEL] == "1" and labels[LABEL_SESSION] == "test-session"
        assert labels[LABEL_OWNER_PID] == str(os.getpid()) and labels[LABEL_OWNER_HOST] == socket.gethostname()
        port = int(server.base_url.rsplit(":", 1)[1])
        binding = container.attrs["HostConfig"]["PortBindings"]["8000/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) == port
        args = container.attrs["Args"]
        assert args[args.index("--port") + 1] == "8000" and args[args.index("--model") + 1] == "tiny-model"
        config = json.loads(args[args.index("--profiler-config") + 1])
        assert config["torch_profiler_dir"] == "/vllm-traces"
        # HF_TOKEN reaches the server but none of our reprs.
        assert f"HF_TOKEN={FAKE_TOKEN}" in container.attrs["Config"]["Env"]
        assert FAKE_TOKEN not in repr(launcher) and FAKE_TOKEN not in repr(launcher.env)
        assert launcher.env.redacted()["HF_TOKEN"] == "***"
        assert not container.attrs["HostConfig"].get("DeviceRequests")  # gpus=(): CPU only
    finally:
        launcher.stop()
    assert _ours(podman_client) == []
    assert "request:" in (tmp_path / "server.log").read_text()  # container log kept on stop
    launcher.stop()  # idempotent


@pytest.mark.podman
def test_leftover_of_dead_owner_removed_live_owner_kept(
    tmp_path: Path, double_options: ContainerOptions, podman_client
):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    common = {LABEL: "1", LABEL_SESSION: "crashed", LABEL_OWNER_HOST: socket.gethostname()}
    orphan = podman_client.containers.create(
        TEST_IMAGE, ["sleep", "300"], name="pvp-orphan", labels={**common, LABEL_OWNER_PID: str(dead.pid)}
    )
    orphan.start()
    alive = podman_client.containers.create(
        TEST_IMAGE, ["sleep", "300"], name="pvp-alive-owner", labels={**common, LABEL_OWNER_PID: str(os.getpid())}
    )
    other_host = podman_client.containers.create(
        TEST_IMAGE,
        ["true"],
        name="pvp-other-host",
        labels={**common, LABEL_OWNER_PID: str(dead.pid), LABEL_OWNER_HOST: "another-host"},
    )
    try:
        launcher = DockerLauncher(_spec(tmp_path), double_options)
        launcher.start()
        launcher.stop()
        names = {c.name for c in podman_client.containers.list(all=True)}
        assert "pvp-orphan" not in names
        assert {"pvp-alive-owner", "pvp-other-host"} <= names
        assert cleanup_leftovers(podman_client) == []  # nothing dead left
    finally:
        for c in (alive, other_host, orphan):
            try:
                c.remove(force=True)
            except Exception:
                pass


@pytest.mark.podman
def test_server_exiting_at_once_gives_log_tail_with_token_redacted_double(
    tmp_path: Path, double_options: ContainerOptions, podman_client, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    double_options.extra_env["DOUBLE_MODE"] = "exit"
    launcher = DockerLauncher(_spec(tmp_path), double_options)
    with pytest.raises(LauncherError) as info:
        launcher.start()
    message = str(info.value)
    assert "exited (code 3)" in message
    assert "fatal: cannot load model; token in use was ***" in message
    assert FAKE_TOKEN not in message
    assert FAKE_TOKEN not in (tmp_path / "server.log").read_text()
    assert _ours(podman_client) == []


@pytest.mark.podman
def test_never_healthy_server_hits_deadline_and_container_is_removed_double(
    tmp_path: Path, double_options: ContainerOptions, podman_client
):
    double_options.extra_env["DOUBLE_MODE"] = "never-healthy"
    launcher = DockerLauncher(_spec(tmp_path, health_timeout_s=3.0), double_options)
    with pytest.raises(
        LauncherError,
        match=r"not healthy at http://127\.0\.0\.1:\d+/health within 3 s; "
        r"container removed;[\s\S]*request: \"GET /health",
    ):
        launcher.start()
    assert _ours(podman_client) == []


@pytest.mark.podman
def test_interrupt_simulated_as_run_returns_leaves_no_container(
    tmp_path: Path, double_options: ContainerOptions, podman_client, monkeypatch
):
    # The SDK's containers.run creates and starts the container; a Ctrl-C (simulated here:
    # raised right after the real call) before start() holds the handle must not leave it.
    from docker.models.containers import ContainerCollection

    launcher = DockerLauncher(_spec(tmp_path), double_options)
    real_run = ContainerCollection.run

    def run_then_interrupt(self, *args, **kwargs):
        real_run(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ContainerCollection, "run", run_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        launcher.start()
    assert launcher.container is None and launcher.container_name
    assert launcher.container_name not in {c.name for c in _ours(podman_client)}


@pytest.mark.podman
def test_stop_interrupted_in_graceful_stop_still_removes_the_container_double(
    tmp_path: Path, double_options: ContainerOptions, podman_client
):
    launcher = DockerLauncher(_spec(tmp_path), double_options)
    launcher.start()
    assert launcher.container_name in {c.name for c in _ours(podman_client)}

    class InterruptedStop:  # the real container, whose graceful stop is cut by a (simulated) Ctrl-C
        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def stop(self, **kwargs):
            raise KeyboardInterrupt

    launcher.container = InterruptedStop(launcher.container)
    with pytest.raises(KeyboardInterrupt):
        launcher.stop()
    assert launcher.container_name not in {c.name for c in _ours(podman_client)}


_SESSION_WITH_A_CONTAINER = """
import json, sys, time
from pathlib import Path
from pytest_vllm_profile.launchers.base import ServerSpec
from pytest_vllm_profile.launchers.docker import ContainerOptions, DockerLauncher
options, trace_dir = json.loads(sys.argv[1]), Path(sys.argv[2])
options["entrypoint"] = tuple(options["entrypoint"])
launcher = DockerLauncher(ServerSpec(model="tiny-model", served_model_name="tiny", trace_dir=trace_dir, gpus=(),
                                     health_timeout_s=30.0), ContainerOptions(**options))
launcher.start()
print("STARTED", launcher.container_name, flush=True)
time.sleep(120)
"""


@pytest.mark.podman
def test_sigterm_to_the_session_removes_its_container_double(
    tmp_path: Path, double_options: ContainerOptions, podman_client
):
    # A CI job cancelled mid-run gets SIGTERM: the launcher's safety net must remove the container.
    fields = (
        "image",
        "base_url",
        "entrypoint",
        "model_as_flag",
        "profiler_style",
        "shm_size",
        "volumes",
        "extra_env",
        "stop_timeout_s",
        "session_id",
    )
    options = json.dumps({f: getattr(double_options, f) for f in fields})
    session = subprocess.Popen(
        [sys.executable, "-c", _SESSION_WITH_A_CONTAINER, options, str(tmp_path / "traces")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = session.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("STARTED "), line + session.stdout.read()  # type: ignore[union-attr]
        name = line.split()[1]
        assert name in {c.name for c in _ours(podman_client)}
        session.send_signal(signal.SIGTERM)
        assert session.wait(timeout=60) == -signal.SIGTERM
    finally:
        if session.poll() is None:
            session.kill()
    assert name not in {c.name for c in _ours(podman_client)}


# -- a real vLLM CPU server in the container ----------------------------------------------


@pytest.mark.podman
@pytest.mark.cpu_vllm
def test_real_vllm_cpu_server_in_container_writes_torch_trace_to_host(
    tmp_path: Path, podman_api: str, podman_client, cpu_vllm_python: str, tiny_qwen3_model: Path
):
    python = Path(cpu_vllm_python)
    venv, model = python.parents[1], tiny_qwen3_model
    options = ContainerOptions(
        image=TEST_IMAGE,
        base_url=podman_api,
        python_in_image=str(python),
        entrypoint=(str(python), "-m", "vllm.entrypoints.openai.api_server"),
        model_as_flag=True,
        profiler_style="auto",
        shm_size="1g",
        volumes=host_python_volumes(venv.resolve()),
        extra_env={"HOME": "/tmp", "VLLM_CPU_KVCACHE_SPACE": "1"},
        stop_timeout_s=10,
    )
    spec = _spec(
        tmp_path, model=str(model), server_args=("--max-model-len", "256", "--enforce-eager"), health_timeout_s=300.0
    )
    launcher = DockerLauncher(spec, options)
    try:
        server = launcher.start()
        assert server.vllm_version == "0.32.0"  # asked of the image in a throwaway container
        args = podman_client.containers.get(launcher.container_name).attrs["Args"]
        assert args[args.index("--model") + 1] == f"/models/{model.name}"  # local folder mounted read-only
        assert "--profiler-config" in args  # style detected from the image's vllm files
        request = {
            "model": "tiny",
            "prompt": "What is the capital of France?",
            "max_tokens": 10,
            "temperature": 0,
            "ignore_eos": True,
        }
        assert httpx.post(f"{server.base_url}/start_profile", timeout=60).status_code == 200
        assert httpx.post(f"{server.base_url}/v1/completions", json=request, timeout=120).status_code == 200
        assert httpx.post(f"{server.base_url}/stop_profile", timeout=300).status_code == 200
        deadline = time.monotonic() + 30
        while not list(server.trace_dir.glob("rank0.*.pt.trace.json.gz")) and time.monotonic() < deadline:
            time.sleep(0.5)
        (trace,) = server.trace_dir.glob("rank0.*.pt.trace.json.gz")
        events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
        steps = [e for e in events if str(e.get("name", "")).startswith("execute_context_")]
        layers = [e for e in events if str(e.get("name", "")).startswith("nn.Module: Qwen3DecoderLayer_")]
        # 10 tokens -> at least 10 engine steps (vLLM may add an empty one); 4 layers per model step.
        assert len(steps) >= 10 and len(layers) >= 40 and len(layers) % 4 == 0
    finally:
        launcher.stop()
    assert _ours(podman_client) == []
