"""launchers/nsys.py: command wrapping, finding nsys, waiting for and exporting the report.

Real nsys cannot run here (no NVIDIA GPU, no Nsight Systems install): the export tests put a
fake `nsys` shell script first on PATH (tests named `..._fake_nsys_script_...`); PATH is
changed for real through the environment.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers import nsys
from support.nsys_double import fake_nsys

SERVER = ["vllm", "serve", "Qwen/Qwen3-8B", "--port", "8011"]


NSYS_2022_4 = nsys.NsysTool(path="/usr/bin/nsys", version=(2022, 4, 2, 1), version_text="2022.4.2.1-df9881f")
NSYS_2025_3 = nsys.NsysTool(path="/opt/nsys", version=(2025, 3, 1, 90), version_text="2025.3.1.90")


def test_wrap_command_puts_nsys_profile_with_the_repeating_capture_range_before_the_server():
    cmd = nsys.wrap_command(SERVER, Path("/traces/run1.nsys-rep"), tool=NSYS_2025_3)
    assert cmd == [
        "/opt/nsys",
        "profile",
        "--trace-fork-before-exec=true",
        "--cuda-graph-trace=node",
        "--trace=cuda,nvtx,osrt",
        "--capture-range=cudaProfilerApi",
        "--capture-range-end=repeat",
        "--sample=none",
        "--cpuctxsw=none",
        "--output=/traces/run1",
        "--force-overwrite=true",
        "--",
        *SERVER,
    ]


def test_wrap_command_for_nsys_2022_4_has_no_separator():
    cmd = nsys.wrap_command(SERVER, Path("/traces/run1"), tool=NSYS_2022_4)
    assert "--" not in cmd and cmd[0] == "/usr/bin/nsys"
    assert cmd[-len(SERVER) :] == SERVER and cmd[-len(SERVER) - 1] == "--force-overwrite=true"


def test_launch_command_opens_a_named_session_with_the_trace_flags():
    cmd = nsys.launch_command(SERVER, "vp-1", tool=NSYS_2022_4)
    assert cmd[:3] == ["/usr/bin/nsys", "launch", "--session-new=vp-1"]
    assert "--trace=cuda,nvtx,osrt" in cmd and "--capture-range=cudaProfilerApi" not in cmd
    assert cmd[-len(SERVER) :] == SERVER and "--" not in cmd
    assert nsys.launch_command(SERVER, "vp-1", tool=NSYS_2025_3)[-len(SERVER) - 1] == "--"


def test_wrap_command_passes_extra_flags_before_the_separator():
    cmd = nsys.wrap_command(SERVER, Path("/traces/run1"), extra=["--duration=60"], tool=NSYS_2025_3)
    sep = cmd.index("--")
    assert cmd[sep - 1] == "--duration=60"
    assert cmd[sep + 1 :] == SERVER
    assert "--output=/traces/run1" in cmd


def test_wrap_command_rejects_an_empty_server_command():
    with pytest.raises(LauncherError, match="empty server command"):
        nsys.wrap_command([], Path("/traces/x"))


def test_report_paths_accept_base_or_suffixed_names():
    assert nsys.report_file(Path("/t/a")) == Path("/t/a.nsys-rep")
    assert nsys.report_file(Path("/t/a.nsys-rep")) == Path("/t/a.nsys-rep")
    assert nsys.sqlite_file(Path("/t/a.nsys-rep")) == Path("/t/a.sqlite")


@pytest.mark.parametrize(
    ("version", "style", "expected"),
    [
        ("0.26.0", None, (["--profiler-config", '{"profiler": "cuda"}'], {})),
        ("0.13.0", None, (["--profiler-config", '{"profiler": "cuda"}'], {})),
        ("0.12.0", None, ([], {"VLLM_TORCH_CUDA_PROFILE": "1"})),
        ("0.11.1rc2", None, ([], {"VLLM_TORCH_CUDA_PROFILE": "1"})),
        (None, None, (["--profiler-config", '{"profiler": "cuda"}'], {})),
        ("deadbeef", None, (["--profiler-config", '{"profiler": "cuda"}'], {})),
        ("0.26.0", "env", ([], {"VLLM_TORCH_CUDA_PROFILE": "1"})),
        ("0.12.0", "profiler-config", (["--profiler-config", '{"profiler": "cuda"}'], {})),
    ],
)
def test_cuda_profiler_server_args_by_version_and_style(version, style, expected):
    args, env = nsys.cuda_profiler_server_args(version, style=style)
    assert (args, env) == expected
    if args:
        assert json.loads(args[1]) == {"profiler": "cuda"}


def test_cuda_profiler_server_args_rejects_unknown_style():
    with pytest.raises(LauncherError, match="unknown vLLM profiler style"):
        nsys.cuda_profiler_server_args("0.26.0", style="magic")


def test_require_nsys_without_nsys_on_path_explains_how_to_fix_it(empty_path: Path):
    assert nsys.nsys_path() is None
    for explicit in (True, False):
        with pytest.raises(nsys.NsysNotFoundError) as info:
            nsys.require_nsys(explicit=explicit)
        message = str(info.value)
        assert message.startswith("nsys not on PATH")
        assert "install Nsight Systems" in message and "--vllm-profiler torch" in message
        assert isinstance(info.value, LauncherError)
    with pytest.raises(nsys.NsysNotFoundError, match="you asked for --vllm-profiler nsys"):
        nsys.require_nsys(explicit=True)
    with pytest.raises(nsys.NsysNotFoundError, match="selected by default"):
        nsys.require_nsys(explicit=False)


def test_require_nsys_finds_the_fake_nsys_script_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = fake_nsys(tmp_path / "bin", "exit 0\n")
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    assert nsys.require_nsys(explicit=True) == str(script)


def test_export_sqlite_reports_stderr_tail_when_fake_nsys_script_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = fake_nsys(tmp_path / "bin", 'echo "line one" >&2\necho "ERROR: report is corrupted" >&2\nexit 3\n')
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    report = tmp_path / "run.nsys-rep"
    report.write_bytes(b"not really a report")
    with pytest.raises(nsys.NsysExportError) as info:
        nsys.export_sqlite(report, timeout_s=30)
    message = str(info.value)
    assert str(report) in message and "exit code 3" in message
    assert "ERROR: report is corrupted" in message
    assert "--type sqlite" in message


def test_export_sqlite_with_fake_nsys_script_that_succeeds_returns_the_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The fake writes the file named after --output, as nsys does, and logs its arguments.
    script = fake_nsys(
        tmp_path / "bin",
        f"""
echo "$@" > {tmp_path}/args.txt
while [ $# -gt 0 ]; do
  if [ "$1" = "--output" ]; then shift; printf 'x' > "$1"; fi
  shift
done
exit 0
""",
    )
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    report = tmp_path / "run.nsys-rep"
    report.write_bytes(b"report")
    out = nsys.export_sqlite(report, timeout_s=30)
    assert out == tmp_path / "run.sqlite" and out.is_file()
    args = (tmp_path / "args.txt").read_text().split()
    assert args[:3] == ["export", "--type", "sqlite"]
    assert args[-1] == str(report)


def test_export_sqlite_fake_nsys_script_exits_zero_but_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = fake_nsys(tmp_path / "bin", "exit 0\n")
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    report = tmp_path / "run.nsys-rep"
    report.write_bytes(b"report")
    with pytest.raises(nsys.NsysExportError, match="was not written"):
        nsys.export_sqlite(report, timeout_s=30)


def test_export_sqlite_without_nsys_on_path(tmp_path: Path, empty_path: Path):
    report = tmp_path / "run.nsys-rep"
    report.write_bytes(b"report")
    with pytest.raises(nsys.NsysNotFoundError):
        nsys.export_sqlite(report, timeout_s=30)


def test_export_sqlite_of_a_missing_report(tmp_path: Path):
    with pytest.raises(nsys.NsysExportError, match="no such nsys report"):
        nsys.export_sqlite(tmp_path / "absent.nsys-rep", timeout_s=5)


def test_wait_for_report_returns_once_the_file_stops_growing(tmp_path: Path):
    report = tmp_path / "run.nsys-rep"

    def writer() -> None:  # nsys writing its report in pieces after the capture range stopped
        with open(report, "wb") as fh:
            for _ in range(3):
                fh.write(b"x" * 1000)
                fh.flush()
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        found = nsys.wait_for_report(tmp_path / "run", timeout_s=30, poll_s=0.1)
    finally:
        thread.join()
    assert found == report and found.stat().st_size == 3000


def test_wait_for_report_times_out_with_a_clear_message(tmp_path: Path):
    with pytest.raises(nsys.NsysExportError) as info:
        nsys.wait_for_report(tmp_path / "never", timeout_s=0.2, poll_s=0.05)
    assert "never.nsys-rep" in str(info.value) and "does not exist" in str(info.value)


def test_collect_returns_an_existing_sqlite_in_a_folder(tmp_path: Path):
    db = tmp_path / "vllm-nsys.sqlite"
    sqlite3.connect(db).close()
    assert nsys.collect(tmp_path) == db


def test_collect_in_an_empty_folder_says_what_it_looked_for(tmp_path: Path):
    with pytest.raises(nsys.NsysExportError, match="expected one nsys report"):
        nsys.collect(tmp_path)


def test_wait_for_report_takes_the_only_other_report_when_the_numbered_one_never_comes(tmp_path: Path):
    other = tmp_path / "vllm-nsys-renamed.nsys-rep"
    other.write_bytes(b"x" * 100)
    found = nsys.wait_for_report(
        tmp_path / "vllm-nsys.1.nsys-rep", timeout_s=10, poll_s=0.05, other_report=lambda: other
    )
    assert found == other
    with pytest.raises(nsys.NsysExportError, match=r"vllm-nsys\.1\.nsys-rep: nsys report not complete"):
        nsys.wait_for_report(tmp_path / "vllm-nsys.1.nsys-rep", timeout_s=0.2, poll_s=0.05, other_report=lambda: None)
