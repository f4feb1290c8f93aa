"""One vLLM server under nsys, captured N times: `NsysServerControl` (used by `ProcessLauncher`).

It builds the wrapped server command for the capture mode chosen for that server
(`nsys.choose_capture_mode`), brackets each capture (session mode: `nsys start` / `nsys stop`
through `NsysSession`; cuda-range mode: vLLM's /start_profile and /stop_profile open and close
the range) and finds, waits for and exports each capture's own report:

- cuda-range: capture n's report is `<trace_dir>/vllm-nsys.<n>.nsys-rep` (`--capture-range-end=repeat`
  numbers them), written when the range closes;
- session: capture n is written by `nsys stop` to `<trace_dir>/vllm-nsys.<n>.nsys-rep`.

A report that does not come within the report timeout fails naming the file waited for;
the caller (the launcher) then stops the server.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import LauncherError
from . import nsys
from .nsys import (
    DEFAULT_REPORT_TIMEOUT_S,
    QUIET_FLAGS,
    REPORT_SUFFIX,
    CaptureMode,
    NsysExportError,
    repeat_report,
    report_base,
    report_file,
)
from .nsys_tool import NsysImporterError, NsysNotFoundError, NsysTool, importer_error_in

REPORT_BASE_NAME = "vllm-nsys"
# nsys 2022.4.2.1 sometimes exits at once, before starting the application, with
# "ProcessWaiterImpl ... sem_open ... No such file or directory" (2 of about 10 starts on this
# 2-core machine under load, issue 14); starting it again works. Retried this often:
NSYS_STARTUP_RACE = ("ProcessWaiterImpl", "sem_open")
STARTUP_RACE_RETRIES = 2


class NsysSession:
    """An interactive nsys session (`nsys launch --session-new=<name>`) driven by start/stop.

    Each `start(output)` .. `stop()` pair is one collection written to `<output>.nsys-rep`
    (`nsys stop` returns once it is written). `listed()` asks `nsys sessions list`.
    """

    def __init__(
        self,
        tool: NsysTool,
        name: str,
        command_timeout_s: float = DEFAULT_REPORT_TIMEOUT_S,
        env: dict[str, str] | None = None,
    ) -> None:
        self.tool = tool
        self.name = name
        self.command_timeout_s = command_timeout_s
        self.env = env
        self.output: Path | None = None  # of the collection in progress

    def _run(self, *args: str, timeout_s: float | None = None) -> str:
        cmd = [self.tool.path, *args]
        limit = self.command_timeout_s if timeout_s is None else timeout_s
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=self.env)
        except subprocess.TimeoutExpired:
            raise NsysExportError(f"`{' '.join(cmd)}` did not finish within {limit:.0f} s") from None
        except OSError as exc:
            raise NsysNotFoundError(f"cannot run {self.tool.path}: {exc}") from None
        text = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode != 0:
            raise NsysExportError(f"`{' '.join(cmd)}` failed (exit code {proc.returncode}): {text.strip()[-2000:]}")
        return text

    def state(self) -> str | None:
        """This session's STATE in `nsys sessions list` ("Idle", "Launched", ...), None when not listed.

        `nsys launch` lists its session as "Idle" (LAUNCH 0) for a moment before the application
        runs; `nsys start` then fails (NotFoundException), so callers wait for "Launched".
        """
        out = self._run("sessions", "list", timeout_s=60)
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[-1] == self.name:
                return fields[2]
        return None

    def wait_launched(self, timeout_s: float, poll_s: float = 0.2) -> None:
        """Wait until the launched application runs in this session; LauncherError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (state := self.state()) not in ("Launched", "Collecting"):
            if time.monotonic() >= deadline:
                raise LauncherError(
                    f"nsys session {self.name}: not launched within {timeout_s:.0f} s "
                    f"(`nsys sessions list` says {state or 'nothing about it'})"
                )
            time.sleep(poll_s)

    def start(self, output: Path, extra: Sequence[str] = ()) -> None:
        """`nsys start --session=<name> --sample=none --cpuctxsw=none --output=<base> --force-overwrite=true`."""
        base = report_base(Path(output))
        self._run(
            "start",
            f"--session={self.name}",
            *QUIET_FLAGS,
            f"--output={base}",
            "--force-overwrite=true",
            *extra,
            timeout_s=120,
        )
        self.output = base

    def stop(self) -> Path:
        """`nsys stop --session=<name>`; returns the report it wrote (checked to exist)."""
        if self.output is None:
            raise LauncherError(f"nsys session {self.name}: stop() without start()")
        output, self.output = self.output, None
        report = report_file(output)
        try:
            text = self._run("stop", f"--session={self.name}")
        except NsysExportError as exc:
            raise NsysExportError(f"{report}: no report, `nsys stop` did not succeed: {exc}") from None
        if not report.is_file():
            failure = importer_error_in(text)
            if failure:
                raise NsysImporterError(f"{report}: nsys could not write the report; its importer failed: {failure}")
            raise NsysExportError(
                f"{report}: `nsys stop --session={self.name}` returned but wrote no report; "
                f"it said: {text.strip()[-1000:]}"
            )
        return report

    def cancel_quietly(self) -> None:
        """End a collection in progress without a report (best effort, for error paths)."""
        if self.output is None:
            return
        self.output = None
        try:
            self._run("cancel", f"--session={self.name}", timeout_s=60)
        except LauncherError:
            pass


class NsysServerControl:
    """The nsys side of one server: its command, capture mode, session and numbered reports.

    configured_nsys: the `--vllm-nsys` path (None: PATH / install folders). requested_mode:
    "auto", "cuda-range" or "session". report_timeout_s: how long one capture's report may take.
    """

    def __init__(
        self, configured_nsys: str | None = None, requested_mode: str = "auto", report_timeout_s: float | None = None
    ) -> None:
        self.configured_nsys = configured_nsys
        self.requested_mode = requested_mode
        self.report_timeout_s = report_timeout_s or DEFAULT_REPORT_TIMEOUT_S
        self.tool: NsysTool | None = None
        self.mode: CaptureMode | None = None
        self.session: NsysSession | None = None
        self.output_base: Path | None = None
        self.captures = 0  # captures begun on this server
        self.startup_retries = 0
        self._session_report: Path | None = None

    def wrap(
        self,
        cmd: list[str],
        env: dict[str, str],
        trace_dir: Path,
        *,
        platform: str,
        vllm_version: str | None,
        profiler_style: str | None,
        user_server_args: Sequence[str],
        session_name: str,
    ) -> tuple[list[str], dict[str, str]]:
        """The server command under nsys and its environment; decides the capture mode.

        Raises NsysNotFoundError / NsysImporterError before anything starts when nsys cannot
        run or its importer cannot load a library (ldd), so that is what the error says.
        """
        path = nsys.require_nsys(explicit=True, configured=self.configured_nsys)
        self.tool = nsys.nsys_tool(path, env=env)
        problem = nsys.importer_problem(path, env)
        if problem:
            raise NsysImporterError(problem)
        self.mode = nsys.choose_capture_mode(self.requested_mode, platform)
        self.output_base = Path(trace_dir) / REPORT_BASE_NAME
        if self.mode == "session":
            self.session = NsysSession(self.tool, session_name, command_timeout_s=self.report_timeout_s, env=env)
            return nsys.launch_command(cmd, session_name, tool=self.tool), env
        if "--profiler-config" not in user_server_args:
            # The cuda profiler's arguments go before the user's (argparse: last one wins).
            args, cuda_env = nsys.cuda_profiler_server_args(vllm_version, profiler_style)
            at = len(cmd) - len(user_server_args)
            cmd = cmd[:at] + args + cmd[at:]
            env.update(cuda_env)
        return nsys.wrap_command(cmd, self.output_base, tool=self.tool), env

    def retry_after_startup_race(self, log_tail: str) -> bool:
        """Whether to start the exited nsys again: its log shows NSYS_STARTUP_RACE and retries remain."""
        if self.startup_retries >= STARTUP_RACE_RETRIES or not all(s in log_tail for s in NSYS_STARTUP_RACE):
            return False
        self.startup_retries += 1
        return True

    def describe(self) -> str:
        """ "session, nsys 2022.4.2.1" — what the summary and results name as the capture."""
        version = self.tool.version_string if self.tool is not None else "?"
        return f"{self.mode}, nsys {version}"

    def _next_report(self) -> Path:
        assert self.output_base is not None, "wrap() first"
        self.captures += 1
        return repeat_report(self.output_base, self.captures)

    def begin_capture(self) -> None:
        """Session mode: `nsys start` into the next numbered report. cuda-range: /start_profile does it."""
        if self.mode != "session":
            return
        assert self.session is not None
        self.session.wait_launched(timeout_s=60)  # the server is healthy, so its session runs already
        report = self._next_report()
        self.session.start(report_base(report))

    def end_capture(self) -> None:
        """Session mode: `nsys stop` (returns once the report is written)."""
        if self.mode != "session":
            return
        assert self.session is not None
        self._session_report = self.session.stop()

    def collect(self, nsys_output: Callable[[], str] | None = None) -> Path:
        """The exported .sqlite of the capture that just ended (waits for its report first)."""
        assert self.tool is not None
        other: Callable[[], Path | None] | None = None
        if self.mode == "session":
            if self._session_report is None:
                raise NsysExportError("nsys session capture: collect() before the capture ended (nsys stop)")
            report, self._session_report = self._session_report, None
        else:
            report = self._next_report()
            other = self._only_other_report
        return nsys.export(
            report, timeout_s=self.report_timeout_s, nsys=self.tool.path, nsys_output=nsys_output, other_report=other
        )

    def _only_other_report(self) -> Path | None:
        """The one `vllm-nsys*.nsys-rep` in the trace folder, if the expected numbered name never comes.

        `<base>.<n>.nsys-rep` is how nsys 2022.4 numbers `repeat` reports; an nsys naming them
        otherwise still has this capture's report as the only one there (earlier captures' reports
        were moved into their capture folders).
        """
        assert self.output_base is not None
        found = sorted(self.output_base.parent.glob(f"{self.output_base.name}*{REPORT_SUFFIX}"))
        return found[0] if len(found) == 1 else None
