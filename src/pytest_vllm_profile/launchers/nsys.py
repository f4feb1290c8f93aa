"""Nsight Systems around a vLLM server: build the nsys command, find each capture's report, export SQLite.

Two capture modes, chosen per server (`choose_capture_mode`):

- "cuda-range": `nsys profile --capture-range=cudaProfilerApi --capture-range-end=repeat` around
  the server, whose vLLM "cuda" profiler makes /start_profile and /stop_profile call
  cudaProfilerStart/Stop. Each range is one collection; nsys numbers their reports
  `<base>.<n>.nsys-rep` (n = 1, 2, ...; `repeat_report`). (`--capture-range-end=stop`, used
  before, ends collection after the first range: the second repeat then waited forever.)
- "session": `nsys launch --session-new=<name>` starts the server ready to be profiled and
  `nsys start` / `nsys stop --session=<name>` bracket the workload (`NsysSession`); no profiler
  in vLLM is needed, so it works for builds without the cuda profiler (vLLM CPU builds reject
  the `cuda` profiler type).

Every command gets `--sample=none --cpuctxsw=none` (QUIET_FLAGS). The executable, its version
and importer checks are in `nsys_tool`. Launchers (process) call these functions.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from ..errors import LauncherError
from .nsys_tool import (
    INSTALL_HINT,
    NsysImporterError,
    NsysNotFoundError,
    NsysTool,
    find_nsys,
    importer_error_in,
    importer_problem,
    nsys_tool,
    require_nsys,
)

__all__ = [
    "INSTALL_HINT",
    "NsysImporterError",
    "NsysNotFoundError",
    "NsysTool",
    "find_nsys",
    "importer_problem",
    "nsys_tool",
    "require_nsys",
]

REPORT_SUFFIX = ".nsys-rep"
SQLITE_SUFFIX = ".sqlite"

CaptureMode = Literal["cuda-range", "session"]
CAPTURE_MODES: tuple[str, ...] = ("cuda-range", "session")

# vLLM 0.13.0 introduced `--profiler-config` (vllm-project/vllm#29912) and deprecated the
# profiler environment variables, which were removed after 0.15 (#33536); the cuda profiler
# kind itself arrived as VLLM_TORCH_CUDA_PROFILE=1 (#27841, between 0.11 and 0.13). Callers that
# know the install's style (launchers.vllm_args detects it from the installed files) pass it
# to `cuda_profiler_server_args`, which then ignores the version.
PROFILER_CONFIG_MIN_VERSION = (0, 13)

# What is traced, in both modes: follow vLLM's forked engine processes, trace CUDA graphs per
# node (each kernel of a graph launch is its own row), record CUDA API, NVTX and OS runtime calls.
TRACE_FLAGS: tuple[str, ...] = (
    "--trace-fork-before-exec=true",
    "--cuda-graph-trace=node",
    "--trace=cuda,nvtx,osrt",
)
# cuda-range mode: one collection per cudaProfilerStart/Stop pair, for as many pairs as come.
CUDA_RANGE_FLAGS: tuple[str, ...] = ("--capture-range=cudaProfilerApi", "--capture-range-end=repeat")
PROFILE_FLAGS: tuple[str, ...] = TRACE_FLAGS + CUDA_RANGE_FLAGS
# No CPU sampling, no context-switch trace: with nsys 2022.4's defaults 3 of 11 runs hung after
# "Generating ...qdstrm"; with these 0 of 14 (issue 14). Kernel times do not need them.
QUIET_FLAGS: tuple[str, ...] = ("--sample=none", "--cpuctxsw=none")
# `nsys stop` returns once the report is written; a big GPU capture takes minutes to import.
DEFAULT_REPORT_TIMEOUT_S = 900.0


class NsysExportError(LauncherError):
    """`nsys export` failed or the report never appeared."""


def nsys_path() -> str | None:
    """The nsys executable found on PATH or in an install folder, or None."""
    return find_nsys()


def report_base(output: Path) -> Path:
    """`output` without a .nsys-rep / .sqlite suffix: what `nsys profile --output` takes."""
    output = Path(output)
    if output.suffix in (REPORT_SUFFIX, SQLITE_SUFFIX):
        return output.with_suffix("")
    return output


def report_file(output: Path) -> Path:
    return report_base(output).with_name(report_base(output).name + REPORT_SUFFIX)


def sqlite_file(output: Path) -> Path:
    return report_base(output).with_name(report_base(output).name + SQLITE_SUFFIX)


def repeat_report(base: Path, number: int) -> Path:
    """The report of capture range `number` (1-based) under `--capture-range-end=repeat`: `<base>.<n>.nsys-rep`."""
    base = report_base(Path(base))
    return base.with_name(f"{base.name}.{number}{REPORT_SUFFIX}")


def _application(tool: NsysTool | None, server_cmd: Sequence[str]) -> list[str]:
    if not server_cmd:
        raise LauncherError("nsys: empty server command")
    return (["--"] if tool is not None and tool.takes_separator else []) + list(server_cmd)


def wrap_command(
    server_cmd: list[str], report_path: Path, extra: Sequence[str] = (), tool: NsysTool | None = None
) -> list[str]:
    """cuda-range mode: `nsys profile <flags> --output=<base> <extra> [--] <server_cmd>`.

    tool: the nsys found (`nsys_tool`); its version decides whether `--` separates the server
    command (2022.4 rejects it), and its path is the executable. None: "nsys", no separator.
    `--force-overwrite` because a rerun into the same trace folder must not stop at nsys' prompt.
    """
    exe = tool.path if tool is not None else "nsys"
    return [
        exe,
        "profile",
        *PROFILE_FLAGS,
        *QUIET_FLAGS,
        f"--output={report_base(Path(report_path))}",
        "--force-overwrite=true",
        *extra,
        *_application(tool, server_cmd),
    ]


def launch_command(
    server_cmd: list[str], session: str, extra: Sequence[str] = (), tool: NsysTool | None = None
) -> list[str]:
    """session mode: `nsys launch --session-new=<session> <trace flags> <extra> [--] <server_cmd>`."""
    exe = tool.path if tool is not None else "nsys"
    return [exe, "launch", f"--session-new={session}", *TRACE_FLAGS, *extra, *_application(tool, server_cmd)]


def _version_tuple(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_profiler_server_args(vllm_version: str | None, style: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(server CLI args, env) that make /start_profile and /stop_profile call cudaProfilerStart/Stop.

    style: "profiler-config" or "env" (`launchers.vllm_args.VllmInstall.profiler_style`, read
    from the installed files) decides when given. Otherwise the version does: >= 0.13 (and
    unknown versions, taken to be current) -> `--profiler-config '{"profiler": "cuda"}'`;
    older -> `VLLM_TORCH_CUDA_PROFILE=1`. A version not starting with "<major>.<minor>" (a git
    hash) counts as unknown.
    """
    if style is not None and style not in ("profiler-config", "env"):
        raise LauncherError(f"unknown vLLM profiler style {style!r}; expected 'profiler-config' or 'env'")
    parsed = _version_tuple(vllm_version) if vllm_version else None
    use_env = style == "env" if style is not None else (parsed is not None and parsed < PROFILER_CONFIG_MIN_VERSION)
    if use_env:
        return [], {"VLLM_TORCH_CUDA_PROFILE": "1"}
    return ["--profiler-config", json.dumps({"profiler": "cuda"})], {}


def wait_for_report(
    output: Path,
    timeout_s: float,
    poll_s: float = 0.5,
    nsys_output: Callable[[], str] | None = None,
    other_report: Callable[[], Path | None] | None = None,
) -> Path:
    """Wait until nsys has finished writing the report `output` and return its path.

    output: a report path or base (`<base>.nsys-rep`). nsys writes the report when the capture
    range stops, `nsys stop` is called or the profiled process ends; it counts as complete once
    it exists and its size has not changed over two polls. nsys_output: what nsys printed so far
    (the server log): an importer failure there ends the wait at once with NsysImporterError.
    other_report: while `output` does not exist, a report under another name to take instead
    (an nsys that numbers repeated captures differently); None: keep waiting.
    """
    report = report_file(output) if Path(output).suffix != REPORT_SUFFIX else Path(output)
    deadline = time.monotonic() + timeout_s
    last_size = -1
    while True:
        if not report.is_file() and other_report is not None:
            report = other_report() or report
        if report.is_file():
            size = report.stat().st_size
            if size > 0 and size == last_size:
                return report
            last_size = size
        failure = importer_error_in(nsys_output()) if nsys_output is not None else None
        if failure:
            raise NsysImporterError(f"{report}: nsys could not write the report; its importer failed: {failure}")
        if time.monotonic() >= deadline:
            state = f"it is still being written ({last_size} bytes)" if report.is_file() else "it does not exist"
            raise NsysExportError(
                f"{report}: nsys report not complete after {timeout_s:.0f} s ({state}); did the capture range "
                "open and close (/start_profile and /stop_profile with the cuda profiler, or nsys start/stop)?"
            )
        time.sleep(poll_s)


def export_sqlite(report: Path, timeout_s: float, nsys: str | None = None) -> Path:
    """`nsys export --type sqlite --output X.sqlite X.nsys-rep`; returns the .sqlite path."""
    report = Path(report)
    if report.suffix != REPORT_SUFFIX:
        report = report_file(report)
    if not report.is_file():
        raise NsysExportError(f"{report}: no such nsys report to export")
    nsys = nsys or require_nsys(explicit=True)
    out = sqlite_file(report)
    cmd = [nsys, "export", "--type", "sqlite", "--force-overwrite=true", "--output", str(out), str(report)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise NsysExportError(f"{report}: `{' '.join(cmd)}` did not finish within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise NsysExportError(f"{report}: cannot run {nsys}: {exc}") from None
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        what = f"exit code {proc.returncode}" if proc.returncode != 0 else f"exit code 0 but {out} was not written"
        raise NsysExportError(f"{report}: `{' '.join(cmd)}` failed ({what}); stderr tail:\n{tail}")
    return out


def export(
    output: Path,
    timeout_s: float = DEFAULT_REPORT_TIMEOUT_S,
    nsys: str | None = None,
    nsys_output: Callable[[], str] | None = None,
    other_report: Callable[[], Path | None] | None = None,
) -> Path:
    """Wait for the report `output` (see wait_for_report), export it, return the .sqlite path."""
    report = wait_for_report(output, timeout_s=timeout_s, nsys_output=nsys_output, other_report=other_report)
    return export_sqlite(report, timeout_s=timeout_s, nsys=nsys)


def collect(location: Path, timeout_s: float = DEFAULT_REPORT_TIMEOUT_S) -> Path:
    """The SQLite export for `location` (a report base/path or a folder holding one report).

    Exports when only the .nsys-rep exists yet.
    """
    location = Path(location)
    if location.is_dir():
        sqlites = sorted(location.glob("*" + SQLITE_SUFFIX))
        if len(sqlites) == 1:
            return sqlites[0]
        reports = sorted(location.glob("*" + REPORT_SUFFIX))
        if len(reports) != 1:
            raise NsysExportError(
                f"{location}: expected one nsys report (*.nsys-rep or *.sqlite), found "
                f"{[p.name for p in sqlites + reports] or 'none'}"
            )
        location = reports[0]
    if sqlite_file(location).is_file():
        return sqlite_file(location)
    return export(location, timeout_s=timeout_s)


def choose_capture_mode(requested: str, platform: str, has_cuda_profiler: bool = True) -> CaptureMode:
    """The capture mode for one server: `requested` ("auto", "cuda-range", "session") resolved.

    auto: cuda-range where vLLM's cuda profiler can open the range (a GPU build that has it),
    else session. platform: `VllmInstall.platform` ("cpu", "gpu", "xpu"). Asking for
    cuda-range on a CPU build is an error: its /start_profile would never open the range.
    """
    if requested == "auto":
        return "cuda-range" if platform == "gpu" and has_cuda_profiler else "session"
    if requested == "cuda-range" and platform != "gpu":
        raise LauncherError(
            f"--vllm-nsys-mode cuda-range needs vLLM's cuda profiler, which this {platform} build rejects; "
            "use --vllm-nsys-mode session (nsys start/stop around the workload) or auto"
        )
    if requested not in CAPTURE_MODES:
        raise LauncherError(f"unknown nsys capture mode {requested!r}; expected auto, {', '.join(CAPTURE_MODES)}")
    return requested  # type: ignore[return-value]
