"""What a user meets in a run (issue 15) through the plugin, against `recorded_trace_double`
(tests/support/vllm_double.py: real HTTP, REAL recorded H100 traces): progress lines (item 1), the
configuration on record and a baseline made differently (item 2), checks before any server
is asked for (item 4), tidy folders (item 6).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.double_sessions import (
    WORKLOAD_TEST,
    baseline_file,
    load_results,
    record_baseline,
    run,
    run_with_baseline_text,
)
from support.vllm_double import RecordedTraceDouble

H100 = "NVIDIA H100 80GB HBM3"


# ---- item 1: progress -----------------------------------------------------------------------
def test_progress_lines_show_the_wait_capture_and_analysis(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    # In a subprocess: pytest's output capture during the test's setup is real there (fd 1).
    result = pytester.runpytest_subprocess(
        "--vllm-profile",
        "--vllm-launcher=url",
        f"--vllm-url={recorded_trace_double.url}",
        f"--vllm-trace-dir={recorded_trace_double.trace_dir}",
        "--vllm-repeats=1",
        "-o",
        "vllm_capture_poll_s=0.05",
        "-p",
        "no:cacheprovider",
        "--update-baselines",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"vllm-profile: waiting for the vLLM server at {recorded_trace_double.url} (model *) to be healthy",
            "vllm-profile: vLLM server for * healthy after * s (http://127.0.0.1:*)",
            "vllm-profile: capture 1/1 of test_workload.py::test_decode: 1 prompt(s), max_tokens=10",
            "vllm-profile: analysing *capture-0-test_workload.test_decode*rank0.*.pt.trace.json.gz",
        ]
    )


def test_progress_is_quiet_under_q_and_goes_to_logging(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    quiet = run(pytester, recorded_trace_double, "--update-baselines", "-q")
    quiet.assert_outcomes(passed=1)
    assert "vllm-profile: capture" not in quiet.stdout.str()
    live = run(pytester, recorded_trace_double, "--log-cli-level=INFO")
    live.assert_outcomes(passed=1)
    live.stdout.fnmatch_lines(["INFO * capture 1/1 of test_workload.py::test_decode: 1 prompt(s), max_tokens=10*"])
    assert "vllm-profile: capture" not in live.stdout.str()  # shown once, by live logging


# ---- item 2: configuration on record --------------------------------------------------------
def test_configuration_is_recorded_in_baseline_and_results_and_a_changed_server_arg_fails(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    run(
        pytester,
        recorded_trace_double,
        "--update-baselines",
        "--vllm-server-arg=--dtype=float32",
        "--vllm-server-arg=--hf-token=hf_secret123",
    ).assert_outcomes(passed=1)
    entry = json.loads(baseline_file(pytester).read_text())["entries"][H100]["0.26.0"]
    config = entry["configuration"]
    assert config["server_args"] == {"option": ["--dtype=float32", "--hf-token=<redacted>"]}
    assert config["hardware"] == H100 and config["launcher"] == "url" and config["vllm_version"] == "0.26.0"
    assert config["plugin_version"]
    assert "hf_secret123" not in baseline_file(pytester).read_text()
    (test,) = load_results(pytester).tests
    assert test.configuration is not None and test.configuration.server_args.option[0] == "--dtype=float32"

    result = run(pytester, recorded_trace_double)  # same profile, without the server args
    result.assert_outcomes(failed=1)
    assert (
        "\nthe baseline was recorded with a different workload or configuration, so the profiles are not "
        "comparable: server arguments from --vllm-server-arg / vllm_server_args: ['--dtype=float32', "
        "'--hf-token=<redacted>'] -> []\n"
    ) in result.stdout.str()


def test_a_marker_changed_since_the_baseline_fails_naming_the_argument(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    record_baseline(pytester, recorded_trace_double)
    pytester.makepyfile(
        test_workload=WORKLOAD_TEST.replace("warmup_requests=0", "warmup_requests=0, prompts=['Why is the sky blue?']")
    )
    result = run(pytester, recorded_trace_double)
    result.assert_outcomes(failed=1)
    (test,) = load_results(pytester).tests
    assert test.message.startswith("the baseline was recorded with a different workload or configuration")
    assert "vllm_workload prompts: ['What is the capital of France?'] -> ['Why is the sky blue?']" in test.message


def test_a_baseline_from_the_other_profiler_fails_naming_both(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    # The GPU suite's nsys runs had to use their own baseline folder: a torch-profiler baseline
    # compared with an nsys capture compares two ways of finding steps and kernels.
    record_baseline(pytester, recorded_trace_double)
    path = baseline_file(pytester)
    document = json.loads(path.read_text())
    document["entries"][H100]["0.26.0"]["summary"]["runtime"]["profiler"] = "nsys"  # as an nsys run records it
    path.write_text(json.dumps(document))
    result = run(pytester, recorded_trace_double)
    result.assert_outcomes(failed=1)
    (test,) = load_results(pytester).tests
    assert test.message.startswith("the baseline was recorded with a different workload or configuration")
    assert "profiler nsys -> torch (keep each profiler's baselines apart: --baseline-dir)" in test.message


def test_a_0_1_0_baseline_without_new_fields_is_not_different(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    record_baseline(pytester, recorded_trace_double)
    path = baseline_file(pytester)
    document = json.loads(path.read_text())
    entry = document["entries"][H100]["0.26.0"]
    del entry["configuration"]  # as 0.1.0 wrote it: no configuration, no issue-12 workload keys
    for key in (
        "timed_repeats",
        "concurrency",
        "num_requests",
        "input_len",
        "api",
        "request_rate",
        "arrival",
        "seed",
        "with_stack",
    ):
        entry["workload"].pop(key, None)
    path.write_text(json.dumps(document))
    run(pytester, recorded_trace_double).assert_outcomes(passed=1)


# ---- item 4: checks before any server is asked for ------------------------------------------
def test_corrupt_baseline_fails_at_setup_before_the_server_is_asked(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    path, result = run_with_baseline_text(pytester, recorded_trace_double, "{not json")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*BaselineError: {path}: baseline file is not valid JSON*no server was started*"])
    assert recorded_trace_double.state.calls == []  # not even a health check


def test_missing_model_folder_fails_at_setup_without_a_boot(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_workload="""
import pytest

@pytest.mark.vllm_workload(model="./models/not-there", max_tokens=4)
def test_decode(vllm_profile):
    pass
"""
    )
    # --vllm-python=/bin/false: a server boot would fail at once with another message.
    result = pytester.runpytest("--vllm-profile", "--vllm-python=/bin/false", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*model folder ./models/not-there does not exist*no server was started*"])
    assert not list((pytester.path / ".vllm-profile" / "sessions").glob("*/main/logs/server-*.log"))


def test_model_folder_written_by_a_session_fixture_is_checked_after_it_ran(pytester: pytest.Pytester) -> None:
    # tests/gpu writes its model folder in an autouse session fixture; a check at collection
    # failed both GPU tests on a fresh H200 machine before the fixture could run.
    pytester.makeconftest(
        """
import pytest

@pytest.fixture(scope="session", autouse=True)
def model_folder(request):
    folder = request.config.rootpath / "models" / "written-by-fixture"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
"""
    )
    pytester.makepyfile(
        test_workload="""
import pytest

@pytest.mark.vllm_workload(model="./models/written-by-fixture", max_tokens=4)
def test_decode(vllm_profile):
    pass
"""
    )
    # --vllm-python=/bin/false: past the check, the boot itself fails (and says so).
    result = pytester.runpytest("--vllm-profile", "--vllm-python=/bin/false", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "does not exist" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*LauncherError: /bin/false failed while looking for vllm*"])


def test_unwritable_trace_root_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    blocker = pytester.path / "afile"
    blocker.write_text("")
    result = pytester.runpytest("--vllm-profile", f"--vllm-trace-root={blocker}/sessions", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--vllm-trace-root {blocker}/sessions: {blocker} is not a folder*"])


def test_rootdir_without_ini_elsewhere_than_the_working_folder_warns(pytester: pytest.Pytester) -> None:
    project = pytester.mkdir("project")
    (project / "test_workload.py").write_text(WORKLOAD_TEST)
    sub = project / "sub"
    sub.mkdir()
    pytester.chdir()
    import os

    os.chdir(sub)
    result = pytester.runpytest("--vllm-profile", "--co", "-p", "no:cacheprovider", str(project))
    result.stdout.fnmatch_lines(
        [
            "*PytestConfigWarning: pytest-vllm-profile: no pytest ini file*pytest chose "
            f"{project} as rootdir, not the working folder {sub}*"
        ]
    )


# ---- item 6: folders ------------------------------------------------------------------------
def test_no_lock_files_in_baselines_and_old_sessions_are_pruned(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    sessions = pytester.path / ".vllm-profile" / "sessions"
    old = [sessions / f"2020010{i}T000000Z-999999{i}" for i in range(1, 5)]
    for folder in old:
        (folder / "main").mkdir(parents=True)
    (sessions / "notes-of-mine").mkdir()
    run(pytester, recorded_trace_double, "--update-baselines", "--vllm-keep-sessions=3").assert_outcomes(passed=1)
    assert [p.name for p in (pytester.path / "baselines").rglob("*") if p.is_file()] == ["test_decode.json"]
    kept = sorted(p.name for p in sessions.iterdir())
    assert kept[:2] == [old[2].name, old[3].name] and "notes-of-mine" in kept and len(kept) == 4
    (test,) = load_results(pytester).tests
    assert all(Path(p).parent.name == "capture-0-test_workload.test_decode" for p in test.trace_paths)
