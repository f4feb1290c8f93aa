"""launchers/nsys_tool.py and nsys_capture.py against the REAL nsys of scripts/setup-nsys.sh
(Debian's Nsight Systems 2022.4.2.1): finding it, its version, the command it accepts, an
interactive session with repeated captures, and a report that never comes.

The profiled program is scripts/nsys/nvtx_steps.c (CPU only, NVTX ranges), compiled here.
Doubles are named so: a `..._double_...` test uses a stand-in executable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers import nsys, nsys_tool
from pytest_vllm_profile.launchers.nsys_capture import (
    NSYS_STARTUP_RACE,
    STARTUP_RACE_RETRIES,
    NsysServerControl,
    NsysSession,
)
from pytest_vllm_profile.trace.nsys_reader import read_nsys_sqlite
from support.nsys_double import fake_nsys
from support.paths import REPO


@pytest.fixture(scope="module")
def real_nsys() -> nsys_tool.NsysTool:
    found = nsys_tool.find_nsys()
    if found is None:
        pytest.skip("no nsys on this machine: run scripts/setup-nsys.sh (Debian's nsight-systems 2022.4)")
    return nsys_tool.nsys_tool(found)


@pytest.fixture(scope="module")
def nvtx_program(real_nsys: nsys_tool.NsysTool, tmp_path_factory: pytest.TempPathFactory) -> Path:
    headers = sorted(Path("/").glob("usr/lib/*/nsight-systems/target-linux-x64/nvtx/include")) + sorted(
        Path("/").glob("opt/nvidia/nsight-systems/*/target-linux-x64/nvtx/include")
    )
    if shutil.which("gcc") is None or not headers:
        pytest.skip("needs gcc and the NVTX headers of nsight-systems-target (scripts/setup-nsys.sh)")
    exe = tmp_path_factory.mktemp("nvtx") / "nvtx_steps"
    subprocess.run(
        ["gcc", "-O1", "-o", str(exe), str(REPO / "scripts/nsys/nvtx_steps.c"), f"-I{headers[0]}", "-ldl"], check=True
    )
    return exe


def _wrap_gpu_program(
    control: NsysServerControl, program: Path, steps: int, tmp_path: Path
) -> tuple[list[str], dict[str, str]]:
    """`control`'s nsys command and environment around `program steps`, as for a vLLM 0.26 GPU server."""
    return control.wrap(
        [str(program), str(steps)],
        dict(os.environ),
        tmp_path,
        platform="gpu",
        vllm_version="0.26.0",
        profiler_style="profiler-config",
        user_server_args=(),
        session_name="unused",
    )


def test_real_nsys_version_is_detected(real_nsys: nsys_tool.NsysTool):
    assert real_nsys.version[:2] >= nsys_tool.OLDEST_KNOWN_VERSION
    assert real_nsys.version_text.startswith("NVIDIA Nsight Systems version")
    assert real_nsys.version_string in real_nsys.version_text


def test_real_2022_4_rejects_the_separator_and_takes_the_command_built_for_it(
    real_nsys: nsys_tool.NsysTool, nvtx_program: Path, tmp_path: Path
):
    if real_nsys.version[:2] != (2022, 4):
        pytest.skip(f"this check is about nsys 2022.4; here is {real_nsys.version_string}")
    assert not real_nsys.takes_separator
    with_separator = [
        real_nsys.path,
        "profile",
        *nsys.QUIET_FLAGS,
        f"--output={tmp_path / 'sep'}",
        "--",
        str(nvtx_program),
        "1",
    ]
    rejected = subprocess.run(with_separator, capture_output=True, text=True, timeout=120)
    assert "ambiguous" in rejected.stdout + rejected.stderr
    cmd = nsys.wrap_command([str(nvtx_program), "1"], tmp_path / "built", tool=real_nsys)
    assert "--" not in cmd and cmd[0] == real_nsys.path
    for _ in range(1 + STARTUP_RACE_RETRIES):  # nsys 2022.4's own start-up race, retried as the launcher does
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if not all(s in done.stdout + done.stderr for s in NSYS_STARTUP_RACE):
            break
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nvtx_steps: 1 rounds" in done.stdout  # the program ran under it, with its own argument


def test_real_session_two_captures_each_with_its_own_report(
    real_nsys: nsys_tool.NsysTool, nvtx_program: Path, tmp_path: Path
):
    session = NsysSession(real_nsys, f"vp-test-{os.getpid()}", command_timeout_s=120)
    launched = subprocess.Popen(
        nsys.launch_command([str(nvtx_program), "400"], session.name, tool=real_nsys),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        session.wait_launched(timeout_s=60)
        assert session.state() == "Launched"
        windows = []
        for n in (1, 2):
            session.start(tmp_path / f"cap.{n}")
            time.sleep(0.5)
            report = session.stop()
            assert report == tmp_path / f"cap.{n}.nsys-rep" and report.is_file()
            windows.append(
                read_nsys_sqlite(nsys.export_sqlite(report, 120, nsys=real_nsys.path), require_kernels=False)
            )
    finally:
        os.killpg(launched.pid, 15)
        launched.wait(30)
    first, second = (w.events["name"].str.extract(r"execute_context_(\d+)")[0].astype(int) for w in windows)
    assert len(first) >= 5 and len(second) >= 5
    assert first.max() < second.min(), "the second capture must hold later rounds than the first"


def test_report_that_never_comes_fails_within_the_timeout_naming_the_file(
    real_nsys: nsys_tool.NsysTool, nvtx_program: Path, tmp_path: Path
):
    # cuda-range mode around a program that never calls cudaProfilerStart: no report ever comes.
    control = NsysServerControl(real_nsys.path, "cuda-range", report_timeout_s=3)
    cmd, env = _wrap_gpu_program(control, nvtx_program, 200, tmp_path)
    assert "--capture-range-end=repeat" in cmd and control.describe().startswith("cuda-range, nsys ")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        t0 = time.monotonic()
        with pytest.raises(nsys.NsysExportError) as info:
            control.collect()
        assert time.monotonic() - t0 < 10
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
    assert str(tmp_path / "vllm-nsys.1.nsys-rep") in str(info.value) and "does not exist" in str(info.value)


def test_configured_nsys_path_file_or_folder_wins_double_script(tmp_path: Path):
    script = fake_nsys(tmp_path / "bin", "exit 0\n")
    assert nsys_tool.find_nsys(script) == str(script)
    assert nsys_tool.find_nsys(script.parent) == str(script)
    with pytest.raises(nsys_tool.NsysNotFoundError, match=r"--vllm-nsys .*absent: no executable nsys there"):
        nsys_tool.find_nsys(tmp_path / "absent")


def test_nsys_in_an_install_folder_is_found_without_path_double_script(
    tmp_path: Path, empty_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for version in ("2024.1.1", "2025.3.1"):
        (tmp_path / "nsight-compute" / version / "host").mkdir(parents=True)
        fake_nsys(tmp_path / "nsight-compute" / version / "host" / "target-linux-x64", "exit 0\n")
    monkeypatch.setattr(nsys_tool, "INSTALL_GLOBS", (f"{tmp_path}/nsight-compute/*/host/target-linux-x64/nsys",))
    assert nsys_tool.find_nsys() == f"{tmp_path}/nsight-compute/2025.3.1/host/target-linux-x64/nsys"


def test_version_parsing_of_real_version_lines():
    assert nsys_tool.parse_version("NVIDIA Nsight Systems version 2022.4.2.1-df9881f") == (2022, 4, 2, 1)
    assert nsys_tool.parse_version("NVIDIA Nsight Systems version 2025.3.1.90-253135822126v0") == (2025, 3, 1, 90)
    assert nsys_tool.parse_version("no version here") is None


def test_importer_missing_library_is_reported_by_name(tmp_path: Path):
    if shutil.which("gcc") is None or shutil.which("ldd") is None:
        pytest.skip("needs gcc and ldd")
    # A real executable linked against a library that is then taken away, standing in for
    # QdstrmImporter without libdw.so.1; laid out as Nsight Compute lays out its bundled nsys.
    (tmp_path / "lib.c").write_text("int answer(void) { return 42; }\n")
    (tmp_path / "main.c").write_text("int answer(void);\nint main(void) { return answer() == 42 ? 0 : 1; }\n")
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,-soname,libdwdouble.so.1",
            "-o",
            str(tmp_path / "libdwdouble.so.1"),
            str(tmp_path / "lib.c"),
        ],
        check=True,
    )
    host = tmp_path / "host" / "linux-desktop-glibc_2_11_3-x64"
    host.mkdir(parents=True)
    subprocess.run(
        ["gcc", "-o", str(host / "QdstrmImporter"), str(tmp_path / "main.c"), f"-L{tmp_path}", "-l:libdwdouble.so.1"],
        check=True,
    )
    exe = fake_nsys(tmp_path / "host" / "target-linux-x64", "exit 0\n")
    assert nsys_tool.importer_candidates(str(exe)) == [host / "QdstrmImporter"]
    found = nsys_tool.importer_problem(str(exe), env={"LD_LIBRARY_PATH": str(tmp_path)})
    assert found is None  # with the library on LD_LIBRARY_PATH it loads
    problem = nsys_tool.importer_problem(str(exe), env={"LD_LIBRARY_PATH": ""})
    assert problem is not None and "cannot load libdwdouble.so.1" in problem and "LD_LIBRARY_PATH" in problem


def test_real_importer_loads(real_nsys: nsys_tool.NsysTool):
    assert nsys_tool.importer_candidates(real_nsys.path), "the installed nsys has a QdstrmImporter"
    assert nsys_tool.importer_problem(real_nsys.path) is None


def test_importer_failure_in_nsys_output_ends_the_wait_at_once(tmp_path: Path):
    said = "Generating '/tmp/nsys-report-1.qdstrm'\nImporter error status: An unknown error occurred.\n"
    t0 = time.monotonic()
    with pytest.raises(nsys_tool.NsysImporterError, match="importer failed: Importer error status"):
        nsys.wait_for_report(tmp_path / "vllm-nsys.1.nsys-rep", timeout_s=60, poll_s=0.05, nsys_output=lambda: said)
    assert time.monotonic() - t0 < 5
    libs = "QdstrmImporter: error while loading shared libraries: libdw.so.1: cannot open shared object file"
    assert nsys_tool.importer_error_in(libs) == "error while loading shared libraries: libdw.so.1:"


@pytest.mark.parametrize(
    ("requested", "platform", "expected"),
    [
        ("auto", "gpu", "cuda-range"),
        ("auto", "cpu", "session"),
        ("auto", "xpu", "session"),
        ("session", "gpu", "session"),
        ("cuda-range", "gpu", "cuda-range"),
    ],
)
def test_capture_mode_is_chosen_per_server(requested: str, platform: str, expected: str):
    assert nsys.choose_capture_mode(requested, platform) == expected


def test_cuda_range_on_a_cpu_build_is_refused_with_the_way_out():
    with pytest.raises(LauncherError, match="cuda-range needs vLLM's cuda profiler.*use --vllm-nsys-mode session"):
        nsys.choose_capture_mode("cuda-range", "cpu")


def test_repeat_reports_are_numbered_from_one():
    assert nsys.repeat_report(Path("/t/vllm-nsys"), 1) == Path("/t/vllm-nsys.1.nsys-rep")
    assert nsys.repeat_report(Path("/t/vllm-nsys.nsys-rep"), 3) == Path("/t/vllm-nsys.3.nsys-rep")


def test_launcher_stops_the_server_when_its_report_never_comes_double_server(
    real_nsys: nsys_tool.NsysTool, nvtx_program: Path, tmp_path: Path
):
    # The "server" is the NVTX program under the real `nsys profile` cuda-range command: it never
    # opens a cudaProfilerApi range, so capture 1's report never comes.
    from pytest_vllm_profile.launchers.base import RunningServer, ServerSpec
    from pytest_vllm_profile.launchers.process import ProcessLauncher, process_group_members

    launcher = ProcessLauncher(ServerSpec(model="double", profiler="nsys"))
    launcher.nsys_control = NsysServerControl(real_nsys.path, "cuda-range", report_timeout_s=2)
    launcher.command, launcher._env = _wrap_gpu_program(launcher.nsys_control, nvtx_program, 2000, tmp_path)
    launcher.log_path = tmp_path / "server.log"
    launcher._spawn("wb")
    launcher.server = RunningServer(
        base_url="http://127.0.0.1:9",
        trace_dir=tmp_path,
        log_path=launcher.log_path,
        profiler="nsys",
        model_name="double",
    )
    try:
        time.sleep(1)
        assert process_group_members(launcher.pgid), "the double server runs"
        with pytest.raises(nsys.NsysExportError) as info:
            launcher.collect_traces()
        assert not process_group_members(launcher.pgid), "collect_traces stopped the server itself"
    finally:
        launcher.stop()
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'vllm-nsys.1.nsys-rep'}: nsys report not complete after 2 s")
    assert "stopped the vLLM server" in message
    assert not process_group_members(launcher.pgid)
