"""Nsight Systems around a vLLM server: find nsys, wrap the server command, export SQLite.

The capture range follows vLLM's /start_profile and /stop_profile: with vLLM's "cuda"
profiler those endpoints call cudaProfilerStart/Stop, and `nsys profile
--capture-range=cudaProfilerApi --capture-range-end=stop` records exactly that window.
nsys writes `<output>.nsys-rep` when the capture range stops or the profiled process ends;
`wait_for_report` waits for it, `export_sqlite` turns it into `<output>.sqlite` for
`trace.nsys_reader.read_nsys_sqlite`. Launchers (process, docker) call these functions.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import LauncherError

REPORT_SUFFIX = ".nsys-rep"
SQLITE_SUFFIX = ".sqlite"

# vLLM 0.13.0 introduced `--profiler-config` (vllm-project/vllm#29912) and deprecated the
# profiler environment variables, which were removed after 0.15 (#33536); the cuda profiler
# kind itself arrived as VLLM_TORCH_CUDA_PROFILE=1 (#27841, between 0.11 and 0.13). Callers that
# know the install's style (launchers.vllm_args detects it from the installed files) pass it
# to `cuda_profiler_server_args`, which then ignores the version.
PROFILER_CONFIG_MIN_VERSION = (0, 13)

# The seeds' flags: follow vLLM's forked engine processes, trace CUDA graphs per node (so each
# kernel of a graph launch is its own row), and record CUDA API, NVTX and OS runtime calls.
PROFILE_FLAGS: tuple[str, ...] = (
    "--trace-fork-before-exec=true",
    "--cuda-graph-trace=node",
    "--trace=cuda,nvtx,osrt",
    "--capture-range=cudaProfilerApi",
    "--capture-range-end=stop",
)

INSTALL_HINT = (
    "install Nsight Systems (https://developer.nvidia.com/nsight-systems, or the CUDA toolkit's "
    "nsight-systems package) and put its bin folder on PATH"
)


class NsysNotFoundError(LauncherError):
    """nsys was asked for but is not on PATH."""


class NsysExportError(LauncherError):
    """`nsys export` failed or the report never appeared."""


def nsys_path() -> str | None:
    """Absolute path of the `nsys` command on PATH, or None."""
    return shutil.which("nsys")


def require_nsys(explicit: bool) -> str:
    """The nsys command, or NsysNotFoundError.

    explicit: the user asked for nsys (`--vllm-profiler nsys`); the message then says how to
    fix the setup. When nsys was only picked by default the plugin skips with this message.
    """
    found = nsys_path()
    if found:
        return found
    how = "you asked for --vllm-profiler nsys" if explicit else "nsys profiling was selected by default"
    raise NsysNotFoundError(
        f"nsys not on PATH ({how}): {INSTALL_HINT}, or choose --vllm-profiler torch "
        f"(PATH={os.environ.get('PATH', '')})"
    )


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


def wrap_command(server_cmd: list[str], report_path: Path, extra: Sequence[str] = ()) -> list[str]:
    """`nsys profile <flags> --output <report> <extra> -- <server_cmd>`.

    report_path: where the report goes, with or without the .nsys-rep suffix. `--force-overwrite`
    because a rerun into the same trace folder must not stop at nsys' "file exists" prompt.
    """
    if not server_cmd:
        raise LauncherError("wrap_command: empty server command")
    return [
        "nsys", "profile", *PROFILE_FLAGS,
        f"--output={report_base(Path(report_path))}", "--force-overwrite=true",
        *extra, "--", *server_cmd,
    ]


def _version_tuple(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_profiler_server_args(
    vllm_version: str | None, style: str | None = None
) -> tuple[list[str], dict[str, str]]:
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


def wait_for_report(output: Path, timeout_s: float, poll_s: float = 0.5) -> Path:
    """Wait until nsys has finished writing `<output>.nsys-rep` and return its path.

    nsys writes the report when the capture range stops or the profiled process ends, first as
    a temporary file, then renamed; a report counts as complete once it exists and its size has
    not changed over two polls.
    """
    report = report_file(output)
    deadline = time.monotonic() + timeout_s
    last_size = -1
    while True:
        if report.is_file():
            size = report.stat().st_size
            if size > 0 and size == last_size:
                return report
            last_size = size
        if time.monotonic() >= deadline:
            state = f"it is still being written ({last_size} bytes)" if report.is_file() else "it does not exist"
            raise NsysExportError(
                f"{report}: nsys report not complete after {timeout_s:.0f} s ({state}); did the server stop "
                "and did the capture range open (/start_profile with the cuda profiler)?"
            )
        time.sleep(poll_s)


def export_sqlite(report: Path, timeout_s: float) -> Path:
    """`nsys export --type sqlite --output X.sqlite X.nsys-rep`; returns the .sqlite path."""
    report = Path(report)
    if report.suffix != REPORT_SUFFIX:
        report = report_file(report)
    if not report.is_file():
        raise NsysExportError(f"{report}: no such nsys report to export")
    nsys = require_nsys(explicit=True)
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


def export(output: Path, timeout_s: float = 900.0) -> Path:
    """After the server stopped: wait for `<output>.nsys-rep`, export it, return the .sqlite path."""
    report = wait_for_report(output, timeout_s=timeout_s)
    return export_sqlite(report, timeout_s=timeout_s)


def collect(location: Path, timeout_s: float = 900.0) -> Path:
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
