"""The run history in a database: SQLite (a file, the default) or PostgreSQL (a URL, so a fleet
of runners shares one history).

One run is one transaction: its row in `runs`, one row per test in `tests`, one per metric in
`metrics` (history/metrics.py names them). Concurrent writers are safe: SQLite in WAL mode with
a busy timeout and `BEGIN IMMEDIATE` (writers queue, readers never block), PostgreSQL with
ordinary transactions. The schema is versioned: `schema_version` holds the version, `MIGRATIONS`
the steps to it; opening a history applies the missing steps under a lock (SQLite's write lock,
a PostgreSQL advisory lock), and refuses a history newer than this code.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import VllmProfileError
from ..results import RunResults
from .metrics import metrics_of_test

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
BUSY_TIMEOUT_S = 60.0  # a writer waits this long for another's transaction (one run: milliseconds)
_PG_MIGRATION_LOCK = 0x76706866  # advisory lock id for migrations ("vphf")
_ID = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}

# version -> statements ({id}: the dialect's auto-increment key). Append; never edit a step.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE runs (id {id}, created TEXT NOT NULL, recorded_at TEXT NOT NULL, commit_sha TEXT,
           vllm_version TEXT, gpu TEXT, runner TEXT, launcher TEXT, profiler TEXT)""",
        """CREATE TABLE tests (run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, nodeid TEXT NOT NULL,
           outcome TEXT, verdict TEXT, timing_domain TEXT, PRIMARY KEY (run_id, nodeid))""",
        """CREATE TABLE metrics (run_id BIGINT NOT NULL, nodeid TEXT NOT NULL, metric TEXT NOT NULL,
           value DOUBLE PRECISION NOT NULL, unit TEXT NOT NULL, PRIMARY KEY (run_id, nodeid, metric),
           FOREIGN KEY (run_id, nodeid) REFERENCES tests(run_id, nodeid) ON DELETE CASCADE)""",
    ),
    # 2: runs imported from a 0.1 JSON Lines history carry their origin, so an import runs once;
    # series are read by test and metric.
    2: (
        "ALTER TABLE runs ADD COLUMN import_key TEXT",
        "CREATE UNIQUE INDEX runs_import_key ON runs (import_key)",
        "CREATE INDEX metrics_series ON metrics (nodeid, metric)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)


class HistoryError(VllmProfileError):
    """The history database cannot be opened, migrated, read or written."""


@dataclass(frozen=True)
class RunRecord:
    id: int
    created: str
    commit: str | None
    vllm_version: str | None
    gpu: str | None
    runner: str | None

    def label(self) -> str:
        """How reports name the run: "run 12 (commit abc1234, vLLM 0.11.0)"."""
        parts = [
            f"commit {self.commit[:7]}" if self.commit else None,
            f"vLLM {self.vllm_version}" if self.vllm_version else None,
        ]
        detail = ", ".join(p for p in parts if p)
        return f"run {self.id}" + (f" ({detail})" if detail else "")


@dataclass
class Series:
    """One metric of one test on one GPU over runs, oldest first."""

    gpu: str | None
    nodeid: str
    metric: str
    unit: str
    runs: list[RunRecord] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def tail(self, runs: int) -> Series:
        """The same series over its newest `runs` runs only."""
        return Series(self.gpu, self.nodeid, self.metric, self.unit, self.runs[-runs:], self.values[-runs:])


def runner_name() -> str:
    """The CI runner's name (GitHub Actions, GitLab, Buildkite, Jenkins), else the host name."""
    for var in ("RUNNER_NAME", "GITHUB_RUNNER_NAME", "CI_RUNNER_DESCRIPTION", "BUILDKITE_AGENT_NAME", "NODE_NAME"):
        if os.environ.get(var):
            return os.environ[var]
    return socket.gethostname()


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


class HistoryStore:
    """An open history database. `open_history(location)` makes one; use it as a context manager."""

    def __init__(self, conn: Any, dialect: str, location: str) -> None:
        self._conn = conn
        self.dialect = dialect
        self.location = location

    # -- plumbing -------------------------------------------------------------------------
    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self._conn.execute(self._sql(statement), tuple(params))
        except Exception as exc:  # sqlite3.Error / psycopg.Error: named with the history
            raise HistoryError(f"{self.location}: {type(exc).__name__}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One transaction holding the write lock from its start (SQLite: BEGIN IMMEDIATE)."""
        if self.dialect == "sqlite":
            self._execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.rollback()
                raise
            self._execute("COMMIT")
        else:
            with self._conn.transaction():
                yield

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------
    def schema_version(self) -> int:
        row = self._execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the missing migrations up to `target`; the version reached. HistoryError when the
        database is newer than this code (it cannot know that schema)."""
        with self._write():
            if self.dialect == "postgresql":
                self._execute("SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.location}: history schema version {current} is newer than this pytest-vllm-profile "
                    f"knows ({SCHEMA_VERSION}); upgrade pytest-vllm-profile to use it"
                )
            for version in range(current + 1, target + 1):
                for statement in MIGRATIONS[version]:
                    self._execute(statement.format(id=_ID[self.dialect]))
                self._execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            return max(current, target)

    # -- writing --------------------------------------------------------------------------
    def append_run(self, results: RunResults, runner: str | None = None, import_key: str | None = None) -> int:
        """Record one run and every test's metrics in one transaction; the new run's id."""
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._write():
            row = self._execute(
                "INSERT INTO runs (created, recorded_at, commit_sha, vllm_version, gpu, runner, launcher, profiler, "
                "import_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    results.created or now,
                    now,
                    results.commit,
                    results.vllm_version,
                    results.gpu,
                    runner if runner is not None else runner_name(),
                    results.launcher,
                    results.profiler,
                    import_key,
                ),
            ).fetchone()
            run_id = int(row[0])
            for test in results.tests:
                summary = test.summary
                self._execute(
                    "INSERT INTO tests (run_id, nodeid, outcome, verdict, timing_domain) VALUES (?, ?, ?, ?, ?)",
                    (
                        run_id,
                        test.nodeid,
                        test.outcome,
                        test.verdict,
                        summary.timing_domain if summary is not None else None,
                    ),
                )
                for metric, (value, unit) in sorted(metrics_of_test(test).items()):
                    self._execute(
                        "INSERT INTO metrics (run_id, nodeid, metric, value, unit) VALUES (?, ?, ?, ?, ?)",
                        (run_id, test.nodeid, metric, value, unit),
                    )
        return run_id

    def has_import(self, import_key: str) -> bool:
        return self._execute("SELECT 1 FROM runs WHERE import_key = ?", (import_key,)).fetchone() is not None

    def add_imported_run(
        self,
        run: RunRecord,
        metrics: dict[str, dict[str, tuple[float, str]]],
        verdicts: dict[str, str],
        import_key: str,
    ) -> int:
        """A run read from elsewhere (a 0.1 JSON Lines history): its metrics as given."""
        with self._write():
            row = self._execute(
                "INSERT INTO runs (created, recorded_at, commit_sha, vllm_version, gpu, runner, import_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    run.created,
                    datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    run.commit,
                    run.vllm_version,
                    run.gpu,
                    run.runner,
                    import_key,
                ),
            ).fetchone()
            run_id = int(row[0])
            for nodeid, test_metrics in metrics.items():
                self._execute(
                    "INSERT INTO tests (run_id, nodeid, verdict) VALUES (?, ?, ?)",
                    (run_id, nodeid, verdicts.get(nodeid)),
                )
                for metric, (value, unit) in sorted(test_metrics.items()):
                    self._execute(
                        "INSERT INTO metrics (run_id, nodeid, metric, value, unit) VALUES (?, ?, ?, ?, ?)",
                        (run_id, nodeid, metric, value, unit),
                    )
        return run_id

    # -- reading --------------------------------------------------------------------------
    def runs(self) -> list[RunRecord]:
        rows = self._execute(
            "SELECT id, created, commit_sha, vllm_version, gpu, runner FROM runs ORDER BY created, id"
        ).fetchall()
        return [RunRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def series(self, nodeid: str | None = None, metric: str | None = None, gpu: str | None = None) -> list[Series]:
        """Every (GPU, test, metric) series, runs oldest first; filtered by exact test id, metric
        name prefix, GPU name when given."""
        where, params = [], []
        if nodeid is not None:
            where.append("m.nodeid = ?")
            params.append(nodeid)
        if metric is not None:
            where.append("m.metric LIKE ? ESCAPE '\\'")
            params.append(metric.replace("%", r"\%").replace("_", r"\_") + "%")
        if gpu is not None:
            where.append("r.gpu = ?")
            params.append(gpu)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = self._execute(
            "SELECT r.id, r.created, r.commit_sha, r.vllm_version, r.gpu, r.runner, m.nodeid, m.metric, m.unit, "
            f"m.value FROM metrics m JOIN runs r ON r.id = m.run_id{clause} ORDER BY r.created, r.id",
            params,
        ).fetchall()
        out: dict[tuple[str | None, str, str], Series] = {}
        for r in rows:
            s = out.setdefault((r[4], r[6], r[7]), Series(r[4], r[6], r[7], r[8]))
            s.runs.append(RunRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5]))
            s.values.append(float(r[9]))
        return [out[k] for k in sorted(out, key=lambda k: (k[0] or "", k[1], k[2]))]


def _connect_sqlite(path: Path) -> Any:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\x00":
            conn.close()
            hint = (
                " (a 0.1 JSON Lines history: import it with `vllm-profile history import FILE --history DB`)"
                if head.lstrip().startswith(b"{")
                else ""
            )
            raise HistoryError(f"{path}: not an SQLite history database{hint}")
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")  # readers and one writer at a time, no reader blocks
        conn.execute("PRAGMA foreign_keys = ON")
    except (sqlite3.Error, OSError) as exc:
        raise HistoryError(f"{path}: cannot open the history database: {exc}") from None
    return conn


def _connect_postgres(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise HistoryError("a PostgreSQL history needs psycopg: pip install 'pytest-vllm-profile[postgres]'") from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=int(BUSY_TIMEOUT_S))
    except psycopg.Error as exc:
        raise HistoryError(f"cannot connect to the PostgreSQL history: {exc}") from None


def open_history(location: str | Path, migrate: bool = True) -> HistoryStore:
    """The history at `location`: a postgresql:// URL, else an SQLite file (created when missing).
    `migrate`: bring the schema up to date (else only what is there is read)."""
    text = str(location)
    if is_postgres(text):
        store = HistoryStore(_connect_postgres(text), "postgresql", _redacted_url(text))
    else:
        store = HistoryStore(_connect_sqlite(Path(text)), "sqlite", text)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


def _redacted_url(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{creds}@{host}"
