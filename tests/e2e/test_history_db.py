"""The history database on SQLite and on a real PostgreSQL server (scripts/setup-postgres.sh
starts one and scripts/test.sh exports its URL as VLLM_PROFILE_TEST_POSTGRES_URL): a run's
round trip, the schema version and its migration, concurrent writer processes, the 0.1 import."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_vllm_profile.codec import decode_json, encode_json
from pytest_vllm_profile.history import (
    SCHEMA_VERSION,
    HistoryEntry,
    HistoryError,
    HistoryWarning,
    TestHistory,
    import_jsonl,
    open_history,
)
from pytest_vllm_profile.history.metrics import metrics_of_test
from pytest_vllm_profile.results import RunResults
from support.report_inputs import FAIL_ID, PASS_ID, real_results

POSTGRES_ENV = "VLLM_PROFILE_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def history_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty history: an SQLite file, or a schema of its own in the test PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "history.sqlite")
        return
    url = os.environ.get(POSTGRES_ENV)
    if not url and os.environ.get("CI"):
        pytest.fail(
            f"CI is set but {POSTGRES_ENV} is not: run the suite through scripts/test.sh, which starts "
            "PostgreSQL (scripts/setup-postgres.sh); CI must not skip the PostgreSQL history tests"
        )
    if not url:
        pytest.skip(
            f"no PostgreSQL server for the tests: {POSTGRES_ENV} is not set (scripts/setup-postgres.sh, "
            "run by scripts/test.sh, starts one and sets it)"
        )
    import psycopg

    schema = f"history_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_run_round_trips_with_its_context_and_every_metric(
    history_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_NAME", "gpu-runner-7")
    results = real_results()
    with open_history(history_location) as store:
        first = store.append_run(results)
        second = store.append_run(results)
        assert second > first
        (run, _) = store.runs()
        assert (run.id, run.created, run.commit, run.vllm_version, run.gpu, run.runner) == (
            first,
            results.created,
            results.commit,
            "0.26.0",
            "NVIDIA H100 80GB HBM3",
            "gpu-runner-7",
        )
        series = {(s.nodeid, s.metric): s for s in store.series()}
    for test in results.tests:
        for metric, (value, unit) in metrics_of_test(test).items():
            s = series.pop((test.nodeid, metric))
            assert s.values == [pytest.approx(value)] * 2 and s.unit == unit
            assert [r.id for r in s.runs] == [first, second]
    assert series == {}  # nothing stored that the test results do not have
    decode = metrics_of_test(results.tests[0])
    assert decode["step.decode.median_us"][0] == results.tests[0].summary.step_kinds["decode"].median_op_time_us
    assert {"class.decode.gemm.us_per_step", "layer.decode.median_us", "latency.request.median_s"} <= set(decode)


def test_series_filters_by_test_metric_prefix_and_gpu(history_location: str) -> None:
    results = real_results()
    with open_history(history_location) as store:
        store.append_run(results)
        decode = store.series(nodeid=PASS_ID, metric="step.decode")
        assert sorted(s.metric for s in decode) == ["step.decode.count", "step.decode.median_us"]
        assert all(s.nodeid == PASS_ID for s in decode)
        assert store.series(metric="class.decode.gemm_") == []  # "_" is a character, not a wildcard
        assert store.series(gpu="NVIDIA B200") == []
        assert store.series(nodeid=FAIL_ID, gpu="NVIDIA H100 80GB HBM3")
        both = store.series(nodeid=FAIL_ID, metric="step.prefill", gpu="NVIDIA H100 80GB HBM3")
        assert sorted(s.metric for s in both) == ["step.prefill.count", "step.prefill.median_us"]


def test_a_fresh_history_is_at_the_current_schema_and_an_old_one_is_migrated(history_location: str) -> None:
    with open_history(history_location, migrate=False) as store:
        assert store.migrate(target=1) == 1
        # a run written by version 1 of the schema (no import_key yet)
        store._execute(
            "INSERT INTO runs (created, recorded_at, gpu) VALUES (?, ?, ?)",
            ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "H100"),
        )
    with open_history(history_location) as store:
        assert store.schema_version() == SCHEMA_VERSION == 2
        assert [r.gpu for r in store.runs()] == ["H100"]  # kept through the migration
        store.append_run(real_results(), import_key="k")  # the version-2 column is there
        assert store.has_import("k")
    with open_history(history_location) as store:  # opening again changes nothing
        assert store.schema_version() == SCHEMA_VERSION and len(store.runs()) == 2


def test_a_history_newer_than_this_code_is_refused(history_location: str) -> None:
    with open_history(history_location) as store:
        store._execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(HistoryError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        open_history(history_location)


def _append_runs(location: str, payload: bytes, worker: int, runs: int) -> None:
    results = decode_json(payload, RunResults)
    with open_history(location) as store:
        for i in range(runs):
            results.commit = f"w{worker}-{i}"
            store.append_run(results, runner=f"worker-{worker}")


def test_concurrent_writer_processes_lose_no_run(history_location: str) -> None:
    # Four processes open the same new history at once (so they also race on creating the
    # schema) and append five runs each.
    payload = encode_json(real_results()).encode()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_runs, args=(history_location, payload, w, 5)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with open_history(history_location) as store:
        runs = store.runs()
        assert sorted(r.commit or "" for r in runs) == sorted(f"w{w}-{i}" for w in range(4) for i in range(5))
        assert len({r.id for r in runs}) == 20
        per_run = sum(len(metrics_of_test(t)) for t in real_results().tests)
        assert sum(len(s.values) for s in store.series()) == 20 * per_run  # every run complete
        assert store.schema_version() == SCHEMA_VERSION


def test_sqlite_history_uses_wal_so_readers_do_not_block_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    open_history(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    jsonl = tmp_path / "history.jsonl"
    jsonl.write_text('{"date": "2026-01-01T00:00:00Z", "tests": {}}\n')
    with pytest.raises(HistoryError, match=r"not an SQLite history database \(a 0.1 JSON Lines history: import"):
        open_history(jsonl)
    assert jsonl.read_text().startswith('{"date"')  # left as it was


def test_an_unreachable_postgres_server_is_a_clear_error() -> None:
    with pytest.raises(HistoryError, match="cannot connect to the PostgreSQL history"):
        open_history("postgresql://nobody:secret@127.0.0.1:9/none?connect_timeout=2")


def test_a_jsonl_history_imports_once_and_corrupt_lines_are_skipped(history_location: str, tmp_path: Path) -> None:
    jsonl = tmp_path / "old.jsonl"
    entries = [
        HistoryEntry(
            date=f"2026-01-0{d}T03:00:00Z",
            commit=f"c{d}",
            gpu="H100",
            vllm_version="0.26.0",
            tests={"t.py::a": TestHistory("pass", {"decode": 6000.0 + d, "prefill": 9000.0})},
        )
        for d in (1, 2)
    ]
    jsonl.write_text("\n".join(encode_json(e, indent=None) for e in entries) + "\n<<<<<<< HEAD\n")
    with open_history(history_location) as store:
        with pytest.warns(HistoryWarning, match=r"old.jsonl:3: skipped a corrupt history line"):
            assert import_jsonl(store, jsonl) == (2, 0)
        with pytest.warns(HistoryWarning):
            assert import_jsonl(store, jsonl) == (0, 2)  # a second import adds nothing
        (decode,) = store.series(metric="step.decode")
        assert decode.values == [6001.0, 6002.0] and [r.commit for r in decode.runs] == ["c1", "c2"]
        assert decode.unit == "us" and decode.gpu == "H100"
