"""Bad traces (issue 17): the fault list of the adversarial run, as a table of cases.

Every trace here is a corrupted copy of a real trace, made in the test by transforming its
text: `h100-seed-rep0` (real vLLM 0.26.0 H100 trace: 10 steps x 36 layers, 5244 kernel events)
for the torch-profiler cases, and for the Nsight Systems cases an export built to NVIDIA's
schema from the real `base-rep0` trace (test_nsys_reader's builder), then damaged with SQL.
Each case states the exact outcome: the error text, or the damage note and the numbers the
summary still gives. Recoverable damage leaves a note starting with DAMAGE_NOTE_PREFIX in the
summary, and a comparison with such a summary never passes.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from pytest_vllm_profile.analysis import DAMAGE_NOTE_PREFIX, damage_notes, summarize, summarize_path
from pytest_vllm_profile.codec import to_builtins
from pytest_vllm_profile.comparator import compare_summaries
from pytest_vllm_profile.errors import TraceError
from pytest_vllm_profile.trace import read_trace_set
from support.nsys_exports import build_nsys_sqlite_from_torch

SEED = "h100-seed-rep0.rank0.pt.trace.json.gz"
BOUNDARY = b"\n  },\n  {"
ARRAY_END = b"\n  }\n  ]"
SEED_KERNELS = 5244  # kernel events of the real trace (its summary: 10 steps x 36 layers)
SEED_ROWS = 9178  # rows of its event table (non-module python frames dropped)
_DUR = re.compile(rb'"dur": -?[0-9.e+]+')
_TS = re.compile(rb'"ts": [0-9.]+')


@dataclass
class Events:
    """A real Kineto trace's text cut into header, one text per event, trailer (byte-exact)."""

    header: bytes
    parts: list[bytes]
    trailer: bytes

    @classmethod
    def of(cls, raw: bytes) -> Events:
        start = raw.index(b'"traceEvents": [') + len(b'"traceEvents": [\n  {')
        end = raw.rindex(ARRAY_END)
        return cls(raw[:start], raw[start:end].split(BOUNDARY), raw[end:])

    def text(self) -> bytes:
        return self.header + BOUNDARY.join(self.parts) + self.trailer

    def indices(self, cat: str) -> list[int]:
        tag = f'"cat": "{cat}"'.encode()
        return [i for i, p in enumerate(self.parts) if tag in p and b'"ph": "X"' in p]


@pytest.fixture(scope="module")
def seed_raw(data_dir: Path) -> bytes:
    return gzip.decompress((data_dir / SEED).read_bytes())


@pytest.fixture(scope="module")
def seed_summary(data_dir: Path):
    return summarize_path(data_dir / SEED)


def _replace(pattern: re.Pattern[bytes], value: bytes) -> Callable[[bytes], bytes]:
    return lambda part: pattern.sub(value, part, count=1)


def _damage(cat: str, every: int, edit: Callable[[bytes], bytes]) -> Callable[[Events], list[float]]:
    """Edit every `every`-th event of `cat`; returns the original durations of the edited events."""

    def corrupt(ev: Events) -> list[float]:
        durs = []
        for i in ev.indices(cat)[::every]:
            durs.append(float(_DUR.search(ev.parts[i]).group(0).split(b": ")[1]))  # type: ignore[union-attr]
            ev.parts[i] = edit(ev.parts[i])
        return durs

    return corrupt


def _duplicate_all(ev: Events) -> list[float]:
    ev.parts = [p for p in ev.parts for _ in (0, 1)]
    return []


def _duplicate_one_kernel(ev: Events) -> list[float]:
    i = ev.indices("kernel")[100]
    ev.parts.insert(i, ev.parts[i])
    return []


def _all_ts_zero(ev: Events) -> list[float]:
    ev.parts = [_TS.sub(b'"ts": 0', p) for p in ev.parts]
    return []


@dataclass
class TorchCase:
    id: str
    corrupt: Callable[[Events], list[float]]
    note: str | None = None  # the damage note, "{path}" standing for the file
    error: str | None = None  # the TraceError's problem text (exact)
    dropped_kernel_time: bool = True  # the summary's kernel total lost exactly the edited durations
    extra_notes: list[str] = field(default_factory=list)


_NON_NUMERIC = "a missing or non-numeric value (field 'dur')"
TORCH_CASES = [
    TorchCase(
        "dur-string-abc",
        _damage("kernel", 1000, _replace(_DUR, b'"dur": "abc"')),
        note=f"6 events (6 kernel) with {_NON_NUMERIC} dropped",
    ),
    TorchCase(
        "dur-null",
        _damage("kernel", 1000, _replace(_DUR, b'"dur": null')),
        note=f"6 events (6 kernel) with {_NON_NUMERIC} dropped",
    ),
    TorchCase(
        "dur-true",
        _damage("kernel", 1000, _replace(_DUR, b'"dur": true')),
        note=f"6 events (6 kernel) with {_NON_NUMERIC} dropped",
    ),
    TorchCase(
        "dur-missing",
        _damage("kernel", 1000, _replace(re.compile(rb', "dur": [0-9.]+'), b"")),
        note=f"6 events (6 kernel) with {_NON_NUMERIC} dropped",
    ),
    TorchCase(
        "dur-string-NaN",
        _damage("kernel", 1000, _replace(_DUR, b'"dur": "NaN"')),
        note=f"6 events (6 kernel) with {_NON_NUMERIC} dropped",
    ),
    TorchCase(
        "dur-negative",
        _damage("kernel", 1000, _replace(_DUR, b'"dur": -5.0')),
        note="6 events (6 kernel) with a negative value (field 'dur') dropped",
    ),
    TorchCase(
        "dur-1e308",
        _damage("kernel", 1000, _replace(_DUR, b'"dur": 1e308')),
        note="6 events (6 kernel) with an infinite or implausible value (> 9e+10 µs) (field 'dur') dropped",
    ),
    TorchCase(
        "dur-string-inf",
        _damage("kernel", 1000, _replace(_DUR, b'"dur": "inf"')),
        note="6 events (6 kernel) with an infinite or implausible value (> 9e+10 µs) (field 'dur') dropped",
    ),
    TorchCase(
        "ts-missing",
        _damage("cpu_op", 500, _replace(re.compile(rb'"ts": [0-9.]+, '), b"")),
        note="7 events (7 cpu_op) with a missing, non-numeric or infinite value (field 'ts') dropped",
        dropped_kernel_time=False,
    ),
    TorchCase(
        "ts-string",
        _damage("cpu_op", 500, _replace(_TS, b'"ts": "abc"')),
        note="7 events (7 cpu_op) with a missing, non-numeric or infinite value (field 'ts') dropped",
        dropped_kernel_time=False,
    ),
    TorchCase(
        "one-kernel-duplicated",
        _duplicate_one_kernel,
        dropped_kernel_time=False,
        note="1 duplicated events (1 kernel: same name, category, ts, dur, process, thread, stream and ids "
        "as another) removed",
    ),
    TorchCase(
        "every-event-duplicated",
        _duplicate_all,
        dropped_kernel_time=False,
        note=f"{SEED_ROWS} duplicated events (5244 kernel, 3051 cpu_op, 699 cuda_runtime, 85 cuda_driver, "
        "54 gpu_memcpy, 12 user_annotation, 11 python_function, 10 gpu_memset, 10 gpu_user_annotation, "
        "1 Trace, 1 overhead: same name, category, ts, dur, process, thread, stream and ids as another) "
        "removed",
    ),
    TorchCase(
        "dur-abc-on-every-kernel",
        _damage("kernel", 1, _replace(_DUR, b'"dur": "abc"')),
        error=f"damaged trace: 5244 of 5244 kernel events have {_NON_NUMERIC}; more than 10% of them, so "
        "times built on the rest would not describe the run (5244 kernel in all)",
    ),
    TorchCase(
        "dur-negative-on-every-kernel",
        _damage("kernel", 1, _replace(_DUR, b'"dur": -1')),
        error="damaged trace: 5244 of 5244 kernel events have a negative value (field 'dur'); more than 10% "
        "of them, so times built on the rest would not describe the run (5244 kernel in all)",
    ),
    TorchCase(
        "dur-1e308-on-a-fifth-of-kernels",
        _damage("kernel", 5, _replace(_DUR, b'"dur": 1e308')),
        error="damaged trace: 1049 of 5244 kernel events have an infinite or implausible value (> 9e+10 µs) "
        "(field 'dur'); more than 10% of them, so times built on the rest would not describe the run "
        "(1049 kernel in all)",
    ),
    TorchCase(
        "every-ts-zero",
        _all_ts_zero,
        error="damaged trace: 5244 of 5244 kernel events have a zero value (field 'ts'); more than 10% of "
        "them, so times built on the rest would not describe the run (5244 kernel, 3051 cpu_op, "
        "699 cuda_runtime, 85 cuda_driver, 54 gpu_memcpy, 12 user_annotation, 11 python_function, "
        "10 gpu_memset, 10 gpu_user_annotation, 1 Trace, 1 overhead in all)",
    ),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[f"corrupted copy of a real trace: {c.id}" for c in TORCH_CASES])
def test_corrupted_torch_trace(case: TorchCase, seed_raw: bytes, seed_summary, tmp_path: Path) -> None:
    ev = Events.of(seed_raw)
    assert ev.text() == seed_raw  # the cut is byte-exact: only the case's edit differs
    dropped = case.corrupt(ev)
    path = tmp_path / "rank0.pt.trace.json.gz"
    path.write_bytes(gzip.compress(ev.text(), compresslevel=1))
    if case.error is not None:
        with pytest.raises(TraceError) as info:
            summarize_path(path)
        assert info.value.problem == case.error
        assert info.value.path == str(path)
        return
    summary = summarize_path(path)
    note = f"{DAMAGE_NOTE_PREFIX}{case.note} (file {path})"
    assert damage_notes(summary) == [note]
    assert summary.notes[0] == note  # first, where a person reads first
    assert (summary.token_steps, summary.layer_count) == (10, 36)
    lost = sum(dropped) if case.dropped_kernel_time else 0.0
    assert summary.total_kernel_us == pytest.approx(seed_summary.total_kernel_us - lost, abs=1e-6)
    # A comparison with a damaged side never passes, whichever side it is, and says why.
    for base, cand, side in ((seed_summary, summary, "candidate"), (summary, seed_summary, "baseline")):
        result = compare_summaries(base, cand)
        assert result.verdict == "fail"
        assert result.regressions[0].metric == f"trace_damage.{side}"
        assert note in result.regressions[0].message


@pytest.mark.parametrize("where", ["kernel name", "trailer"])
def test_invalid_utf8_deep_in_a_corrupted_copy_of_a_real_trace_names_its_byte(
    where: str, seed_raw: bytes, tmp_path: Path
) -> None:
    at = (
        seed_raw.index(b'"cat": "kernel", "name": "', len(seed_raw) // 2) + 26
        if where == "kernel name"
        else seed_raw.rindex(b'"traceName": "') + 14
    )
    path = tmp_path / "rank0.pt.trace.json"
    path.write_bytes(seed_raw[:at] + b"\xff\xfe" + seed_raw[at:])
    line = seed_raw.count(b"\n", 0, at) + 1
    with pytest.raises(TraceError) as info:
        summarize_path(path)
    assert info.value.problem == f"invalid UTF-8 at byte {at} (line {line}) of the JSON text: invalid start byte"


def test_infinity_literal_in_a_corrupted_copy_of_a_real_trace_is_invalid_json_at_its_byte(
    seed_raw: bytes, tmp_path: Path
) -> None:
    # Python's json.dumps writes float("inf") as Infinity, which JSON does not allow.
    m = _DUR.search(seed_raw, seed_raw.index(b'"cat": "kernel"', len(seed_raw) // 2))
    assert m is not None
    path = tmp_path / "rank0.pt.trace.json"
    path.write_bytes(seed_raw[: m.start()] + b'"dur": Infinity' + seed_raw[m.end() :])
    at = m.start() + len(b'"dur": ')
    with pytest.raises(TraceError) as info:
        summarize_path(path)
    line = seed_raw.count(b"\n", 0, at) + 1
    assert info.value.problem == (
        f"invalid JSON at byte {at} (line {line}): unexpected character, expected a JSON "
        "value (NaN / Infinity, as Python's json writes non-finite floats, are not "
        "valid JSON)"
    )


# ----------------------------------------------------------------------------- other layouts


def _one_event_per_line(doc: dict) -> bytes:
    events = doc.pop("traceEvents")
    head = orjson.dumps(doc)[:-1] + b', "traceEvents": [\n'
    return head + b",\n".join(orjson.dumps(e) for e in events) + b"\n]}\n"


LAYOUTS: dict[str, Callable[[dict], bytes]] = {
    "one-event-per-line": _one_event_per_line,
    "all-on-one-line": orjson.dumps,
    "indent-2-sorted-keys": lambda doc: orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
}


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=[f"transformed real trace: {k}" for k in LAYOUTS])
def test_other_json_layouts_of_a_real_trace_give_the_same_summary(
    layout: str, seed_raw: bytes, seed_summary, tmp_path: Path
) -> None:
    path = tmp_path / "rank0.pt.trace.json.gz"
    path.write_bytes(gzip.compress(LAYOUTS[layout](orjson.loads(seed_raw)), compresslevel=1))
    trace_set = read_trace_set(path)
    assert trace_set.ranks[0].metadata.extra["parser"] == "any-layout"
    summary = summarize(trace_set)
    assert to_builtins(summary) | {"source": None} == to_builtins(seed_summary) | {"source": None}


# ----------------------------------------------------------------------------- nsys exports


@pytest.fixture(scope="module")
def nsys_export(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nsys") / "profile.sqlite"
    return build_nsys_sqlite_from_torch(data_dir / "base-rep0.pt.trace.json.gz", out)


def _without_not_null(con: sqlite3.Connection, table: str) -> None:
    # The schema declares start/end NOT NULL; a broken writer can still produce NULLs: rebuild the
    # table without the constraint (CREATE TABLE AS keeps the columns and rows, not the constraints).
    con.executescript(
        f'CREATE TABLE t AS SELECT * FROM "{table}"; DROP TABLE "{table}"; ALTER TABLE t RENAME TO "{table}";'
    )


NSYS_KERNELS = 5244  # kernel rows of the export built from base-rep0
NSYS_CASES = [
    (
        "text-start-on-10-kernels",
        "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET start = 'abc' WHERE rowid % 500 = 0",
        "10 events (10 kernel) with a NULL or non-integer value (field 'start') dropped",
        None,
    ),
    (
        "null-end-on-10-kernels",
        'UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET "end" = NULL WHERE rowid % 500 = 0',
        "10 events (10 kernel) with a NULL or non-integer value (field 'end') dropped",
        None,
    ),
    (
        "end-before-start-on-10-kernels",
        'UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET "end" = start - 10 WHERE rowid % 500 = 0',
        "10 events (10 kernel) with a value before its start (field 'end') dropped",
        None,
    ),
    (
        "text-end-on-every-kernel",
        'UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET "end" = \'x\' || "end"',
        None,
        f"damaged trace: {NSYS_KERNELS} of {NSYS_KERNELS} kernel events have a NULL or non-integer value (field 'end'); "
        f"more than 10% of them, so times built on the rest would not describe the run ({NSYS_KERNELS} kernel in all)",
    ),
]


@pytest.mark.parametrize(
    ("sql", "note", "error"),
    [c[1:] for c in NSYS_CASES],
    ids=[f"corrupted copy of an export of a real trace: {c[0]}" for c in NSYS_CASES],
)
def test_corrupted_nsys_export(
    sql: str, note: str | None, error: str | None, nsys_export: Path, tmp_path: Path
) -> None:
    path = tmp_path / "profile.sqlite"
    shutil.copy(nsys_export, path)
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0] == NSYS_KERNELS
        if "NULL" in sql:
            _without_not_null(con, "CUPTI_ACTIVITY_KIND_KERNEL")
        con.execute(sql)
    if error is not None:
        with pytest.raises(TraceError) as info:
            summarize_path(path)
        assert info.value.problem == error
        return
    summary = summarize_path(path)
    assert damage_notes(summary) == [f"{DAMAGE_NOTE_PREFIX}{note} (file {path})"]
    clean = summarize_path(nsys_export)
    assert damage_notes(clean) == []
    assert summary.token_steps == clean.token_steps
    assert compare_summaries(clean, summary).verdict == "fail"


# ----------------------------------------------------------------------------- paths and folders


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "trace.pt.trace.json"
    os.mkfifo(path)
    return path


def _loop(tmp_path: Path) -> Path:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def _dangling(tmp_path: Path) -> Path:
    link = tmp_path / "rank0.pt.trace.json.gz"
    link.symlink_to(tmp_path / "gone.json.gz")
    return link


PATH_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("fifo", _fifo, "a FIFO (named pipe), not a trace file or folder"),
    ("dev-zero", lambda _: Path("/dev/zero"), "a character device, not a trace file or folder"),
    ("symlink-loop", _loop, "symlink loop: resolving this link leads back to itself"),
    ("dangling-symlink", _dangling, "broken symlink: it points to '{tmp}/gone.json.gz', which does not exist"),
]


@pytest.mark.parametrize(("make", "problem"), [c[1:] for c in PATH_CASES], ids=[c[0] for c in PATH_CASES])
def test_path_that_is_no_trace_names_the_cause(make: Callable[[Path], Path], problem: str, tmp_path: Path) -> None:
    path = make(tmp_path)
    with pytest.raises(TraceError) as info:
        summarize_path(path)
    assert info.value.problem == problem.format(tmp=tmp_path)


def test_folder_with_a_real_trace_and_an_unrelated_json_reads_the_trace(
    data_dir: Path, tmp_path: Path, seed_summary
) -> None:
    shutil.copy(data_dir / SEED, tmp_path / "profile.pt.trace.json.gz")
    (tmp_path / "config.json").write_text('{"model": "qwen3"}')
    summary = summarize_path(tmp_path)
    assert summary.token_steps == seed_summary.token_steps
    assert summary.notes[0] == (
        f"skipped {tmp_path / 'config.json'}: valid JSON but not a torch-profiler trace: "
        "no 'traceEvents' list (top-level keys: model)"
    )
    assert damage_notes(summary) == []


def test_folder_with_only_an_unrelated_json_still_fails(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model": "qwen3"}')
    with pytest.raises(TraceError, match="no 'traceEvents' list"):
        summarize_path(tmp_path)


def test_folder_with_three_unrelated_traces_states_which_it_read(data_dir: Path, tmp_path: Path) -> None:
    names = ["a.pt.trace.json.gz", "b.pt.trace.json.gz", "c.pt.trace.json.gz"]
    for i, (src, name) in enumerate(
        zip((SEED, "base-rep0.pt.trace.json.gz", "h100-batch4-rep0.rank0.pt.trace.json.gz"), names, strict=True)
    ):
        shutil.copy(data_dir / src, tmp_path / name)
        os.utime(tmp_path / name, ns=(10**18 + i, 10**18 + i))
    summary = summarize_path(tmp_path)
    assert summary.source == [str(tmp_path / "c.pt.trace.json.gz")]
    assert (
        f"3 traces for rank 0 in {tmp_path}; read the newest by file mtime (the names carry no <ns> write "
        "time): c.pt.trace.json.gz; not read: a.pt.trace.json.gz, b.pt.trace.json.gz"
    ) in summary.notes


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report pytest's peak.
_PEAK_GROWTH = """
import re, sys
import pytest_vllm_profile.trace.torch_reader as reader
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
reader._BLOCK_BYTES = 1 << 20  # 1 MB blocks instead of 8 MB: a few-MB file then spans many blocks
before = hwm()
trace = reader.read_torch_trace(sys.argv[1], parser=sys.argv[2])
print(hwm() - before, len(trace.events))
"""


def _peak_growth_kb(path: Path, parser: str) -> tuple[int, int]:
    """Peak RSS growth (KB) of reading `path` in a fresh process (imports excluded), and the row count."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PEAK_GROWTH, str(path), parser],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).stdout.split()
    return int(out[0]), int(out[1])


def test_one_event_per_line_layout_of_a_real_trace_is_read_in_bounded_memory(data_dir: Path, tmp_path: Path) -> None:
    # Issue 17: a 0.86 GB trace in this layout took 7.5 GB RSS (whole-document parse) and died
    # under an address-space limit. Measured here on base-rep0 (7.8 MB in this layout, 9166 rows):
    # peak growth ~11 MB streamed in any layout, ~8 MB for Kineto's own layout, ~57 MB parsed whole.
    raw = gzip.decompress((data_dir / "base-rep0.pt.trace.json.gz").read_bytes())
    kineto = tmp_path / "kineto.pt.trace.json"
    kineto.write_bytes(raw)
    per_line = tmp_path / "transformed-real-trace-one-event-per-line.pt.trace.json"
    per_line.write_bytes(_one_event_per_line(orjson.loads(raw)))
    streamed, rows = _peak_growth_kb(per_line, "auto")
    kineto_growth, kineto_rows = _peak_growth_kb(kineto, "auto")
    whole, whole_rows = _peak_growth_kb(per_line, "full")
    assert rows == kineto_rows == whole_rows == 9166
    assert streamed < 2 * kineto_growth + 4096, (streamed, kineto_growth)
    assert streamed < whole / 3, (streamed, whole)


def test_unstreamable_json_above_the_whole_parse_limit_is_refused_naming_layout_and_size(
    seed_raw: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A corrupted copy of a real trace, one event per line, with a stray byte early on: neither
    # streaming parser can cut it, and with the whole-document limit scaled down from 256 MB to
    # 1 MB (and the pending limit from 64 MB to 1 MB) it must be refused, not parsed whole.
    from pytest_vllm_profile.trace import any_layout, torch_reader

    monkeypatch.setattr(torch_reader, "FULL_PARSE_MAX_BYTES", 1 << 20)
    monkeypatch.setattr(torch_reader, "_BLOCK_BYTES", 1 << 20)
    monkeypatch.setattr(any_layout, "PENDING_LIMIT_BYTES", 1 << 20)
    text = _one_event_per_line(orjson.loads(seed_raw))
    at = text.index(b'{"ph":"X"', 200_000)
    path = tmp_path / "rank0.pt.trace.json"
    path.write_bytes(text[:at] + b"#" + text[at:])
    with pytest.raises(TraceError) as info:
        read_trace_set(path)
    problem = info.value.problem
    assert problem.startswith(
        "cannot be read in bounded memory: neither Kineto's line layout nor any other JSON "
        "layout could be streamed (not Kineto's line layout: "
    )
    done = re.search(
        r"any layout: no decodable event boundary in 1 MB of text starting (\d+) bytes into the "
        r"traceEvents array \(last decode error: JSON is malformed: ",
        problem,
    )
    assert done is not None, problem
    assert int(done.group(1)) < at  # the cut stopped before the stray byte
    assert problem.endswith(
        f"and a whole-document parse of more than 1 MB of JSON ({len(text) >> 20} MB on disk) "
        "would need about 10x that in memory; refused"
    )


def test_tensor_parallel_profile_with_one_damaged_rank_says_so_at_the_top(
    data_dir: Path, seed_raw: bytes, seed_summary, tmp_path: Path
) -> None:
    # rank 0: the real trace; rank 1: a corrupted copy of it (6 kernel durations "abc").
    shutil.copy(data_dir / SEED, tmp_path / "rank0.pt.trace.json.gz")
    ev = Events.of(seed_raw)
    _damage("kernel", 1000, _replace(_DUR, b'"dur": "abc"'))(ev)
    damaged = tmp_path / "rank1.pt.trace.json.gz"
    damaged.write_bytes(gzip.compress(ev.text(), compresslevel=1))
    summary = summarize_path(tmp_path)
    note = f"{DAMAGE_NOTE_PREFIX}6 events (6 kernel) with {_NON_NUMERIC} dropped (file {damaged})"
    assert [r.rank for r in summary.ranks] == [0, 1]
    assert summary.notes[0] == note
    assert damage_notes(summary) == [note]
    assert damage_notes(summary.ranks[0]) == []
    assert compare_summaries(seed_summary, summary).regressions[0].metric == "trace_damage.candidate"
