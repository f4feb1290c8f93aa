"""results.json under concurrency and across sessions (issue 17): unique temp names and atomic
replace (two writers with a fixed temp name failed 50 of 360 saves and tore 342 reads), and each
session's own results kept under its session folder."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from pytest_vllm_profile.results import RunResults, TestResult
from support.double_sessions import WORKLOAD_TEST, run
from support.vllm_double import RecordedTraceDouble

SAVES_PER_WRITER = 120


def _writer(path: str, name: str, errors: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    results = RunResults(created=name, tests=[TestResult(nodeid=f"{name}::t{i}", outcome="passed") for i in range(200)])
    failed = 0
    for _ in range(SAVES_PER_WRITER):
        try:
            results.save(path)
        except OSError:
            failed += 1
    errors.put(failed)


def _reader(path: str, stop: multiprocessing.Event, torn: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    bad = reads = 0
    while not stop.is_set():
        try:
            loaded = RunResults.load(path)
        except FileNotFoundError:
            continue
        except Exception:  # noqa: BLE001 - any decode failure is a torn read
            bad += 1
            continue
        reads += 1
        if len(loaded.tests) != 200:
            bad += 1
    torn.put((bad, reads))


def test_two_writers_never_fail_and_readers_never_see_a_torn_file(tmp_path: Path) -> None:
    path = str(tmp_path / ".vllm-profile" / "results.json")
    ctx = multiprocessing.get_context("fork")
    errors, torn, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=_reader, args=(path, stop, torn))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(path, name, errors)) for name in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    stop.set()
    reader.join(30)
    assert [errors.get(timeout=5) for _ in writers] == [0, 0]
    bad, reads = torn.get(timeout=5)
    assert reads > 0 and bad == 0
    assert RunResults.load(path).created in ("a", "b")
    assert [p.name for p in Path(path).parent.iterdir()] == ["results.json"]  # no temp file left


def test_a_second_session_keeps_the_first_sessions_results(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    first = run(pytester, recorded_trace_double, "--update-baselines", *xdist_args)
    first.assert_outcomes(passed=1)
    (first_own,) = [line.split(": ", 1)[1] for line in first.outlines if line.startswith("this session's results: ")]
    pytester.makepyfile(test_other=WORKLOAD_TEST.replace("def test_decode", "def test_other"))
    second = run(pytester, recorded_trace_double, "test_other.py", "--update-baselines", *xdist_args)
    second.assert_outcomes(passed=1)
    (second_own,) = [line.split(": ", 1)[1] for line in second.outlines if line.startswith("this session's results: ")]
    assert first_own != second_own
    assert [t.nodeid for t in RunResults.load(first_own).tests] == ["test_workload.py::test_decode"]
    assert [t.nodeid for t in RunResults.load(second_own).tests] == ["test_other.py::test_other"]
    latest = pytester.path / ".vllm-profile" / "results.json"
    assert RunResults.load(latest) == RunResults.load(second_own)  # the shared file is the latest session
