"""Bad baseline files (issue 17): each case of the table is one damaged file and the exact
outcome a read and an update must give. A broken file is never overwritten and never reads as
"no baseline"; the cause comes first and names the file (and the byte or JSON pointer).

The files are real baselines written by the store from a summary built in the test, then
damaged the way a merge, an editor or another writer damages them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_vllm_profile.baseline import BaselineStore, read_baseline_file
from pytest_vllm_profile.errors import BaselineError
from support.double_sessions import REP0, baseline_file, record_baseline, run
from support.paths import DOCS
from support.summaries import BASELINE_NODEID, built_one_kernel_summary
from support.vllm_double import RecordedTraceDouble

GPU, VLLM = "H100", "0.26.0"


def _edit_text(old: str, new: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        text = path.read_text()
        assert old in text, f"{old!r} not in the baseline written by the store"
        path.write_text(text.replace(old, new, 1))

    return damage


def _edit_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        document = json.loads(path.read_text())
        change(document)
        path.write_text(json.dumps(document, indent=1))

    return damage


def _summary(document: dict) -> dict:
    return document["entries"][GPU][VLLM]["summary"]


def _invalid_utf8_at_byte(offset: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        at = data.index(b'"nvjet_gemm"', offset) + 1  # inside a string, deep in the file
        data[at] = 0xFF
        path.write_bytes(bytes(data))

    return damage


def _replace_with(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.unlink()
        make(path)

    return damage


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@dataclass(frozen=True)
class BadBaseline:
    name: str
    damage: Callable[[Path], None]
    message: str  # regular expression the BaselineError must match (after the file name)


CASES = [
    BadBaseline(
        "nan-literal",
        _edit_text('"total_kernel_us": 54000.0', '"total_kernel_us": NaN'),
        r"non-finite number NaN \(line \d+, column \d+\)",
    ),
    BadBaseline(
        "infinity-literal",
        _edit_text('"total_kernel_us": 54000.0', '"total_kernel_us": Infinity'),
        r"non-finite number Infinity \(line \d+",
    ),
    BadBaseline(
        "minus-infinity-literal",
        _edit_text('"mean_us": 6000.0', '"mean_us": -Infinity'),
        r"non-finite number -Infinity \(line \d+",
    ),
    BadBaseline(
        "overflowing-number-1e400",
        _edit_text('"total_kernel_us": 54000.0', '"total_kernel_us": 1e400'),
        r"not a valid BaselineFile: Number out of range - at `\$\.entries\[\.\.\.\]",
    ),
    BadBaseline("invalid-utf8-deep", _invalid_utf8_at_byte(400), r"not valid UTF-8 at byte \d{3,} \(0xff"),
    BadBaseline("truncated-json", _truncate, r"not valid JSON \(line \d+, column \d+"),
    BadBaseline("empty-file", lambda p: p.write_bytes(b""), r"not valid JSON \(line 1, column 1: Expecting value"),
    BadBaseline("top-level-array", lambda p: p.write_text("[]"), r"at JSON pointer '/': \[\] is not of type 'object'"),
    BadBaseline(
        "token-steps-string",
        _edit_json(lambda d: _summary(d).update(token_steps="nine")),
        r"'/entries/H100/0.26.0/summary/token_steps': 'nine' is not of type 'integer'",
    ),
    BadBaseline(
        "duration-null",
        _edit_json(lambda d: _summary(d)["kernels"][0].update(total_us=None)),
        r"'/entries/H100/0.26.0/summary/kernels/0/total_us': None is not of type 'number'",
    ),
    BadBaseline(
        "negative-kernel-time",
        _edit_json(lambda d: _summary(d).update(total_kernel_us=-5.0)),
        r"'/entries/H100/0.26.0/summary/total_kernel_us': -5.0 is less than the minimum of 0",
    ),
    BadBaseline(
        "negative-step-time",
        _edit_json(lambda d: _summary(d)["steps"][0].update(op_time_us=-1.0)),
        r"'/entries/H100/0.26.0/summary/steps/0/op_time_us': -1.0 is less than the minimum of 0",
    ),
    BadBaseline(
        "schema-version-3",
        _edit_json(lambda d: d.update(schema_version=3)),
        r"'/schema_version': 3 is not one of \[2\]",
    ),
    BadBaseline(
        "unknown-field",
        _edit_json(lambda d: d.update(extra=1)),
        r"at JSON pointer '/': Additional properties are not allowed \('extra' was unexpected\)",
    ),
    BadBaseline(
        "repeats-zero",
        _edit_json(lambda d: d["entries"][GPU][VLLM].update(repeats=0)),
        r"'/entries/H100/0.26.0/repeats': 0 is less than the minimum of 1",
    ),
    BadBaseline(
        "symlink-loop",
        _replace_with(lambda p: os.symlink(p.name, p)),
        r"baseline file is a symlink loop \(Too many levels of symbolic links\)",
    ),
    BadBaseline(
        "fifo", _replace_with(lambda p: os.mkfifo(p)), r"baseline file is a FIFO \(named pipe\), not a regular"
    ),
    BadBaseline("directory", _replace_with(lambda p: p.mkdir()), r"baseline file is a directory, not a regular file"),
    BadBaseline(
        "symlink-to-dev-zero",
        _replace_with(lambda p: os.symlink("/dev/zero", p)),
        r"baseline file is a character device, not a regular file",
    ),
    BadBaseline("unreadable", lambda p: p.chmod(0), r"cannot read baseline file: Permission denied"),
]


def _snapshot(path: Path) -> tuple[bool, str, bytes | None]:
    kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "other"
    content = path.read_bytes() if kind == "other" and path.stat().st_mode & 0o400 and path.is_file() else None
    return (os.path.lexists(path), kind, content)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_baseline_is_refused_by_name_and_never_overwritten(tmp_path: Path, case: BadBaseline) -> None:
    if case.name == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a mode-000 file")
    store = BaselineStore(tmp_path)
    store.save(BASELINE_NODEID, GPU, VLLM, built_one_kernel_summary(gpu=GPU))
    path = store.path_for(BASELINE_NODEID)
    case.damage(path)
    before = _snapshot(path)
    pattern = re.escape(f"{path}: ") + r".*" + case.message
    with pytest.raises(BaselineError, match=pattern):
        store.lookup(BASELINE_NODEID, GPU, VLLM)
    with pytest.raises(BaselineError, match=pattern):
        store.save(BASELINE_NODEID, "H200", VLLM, built_one_kernel_summary(gpu="H200"))
    assert _snapshot(path) == before  # never overwritten, never replaced


def test_case_table_counts() -> None:
    """docs/faults.md lists these cases; keep the count there in step."""
    faults_doc = (DOCS / "faults.md").read_text()
    assert f"{len(CASES)} bad-baseline cases" in faults_doc


def test_symlinked_baseline_stays_a_symlink_on_update(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    target = tmp_path / "shared" / "real.json"
    target.parent.mkdir()
    BaselineStore(tmp_path / "scratch").save(BASELINE_NODEID, GPU, VLLM, built_one_kernel_summary(gpu=GPU))
    target.write_bytes(BaselineStore(tmp_path / "scratch").path_for(BASELINE_NODEID).read_bytes())
    link = store.path_for(BASELINE_NODEID)
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(target, link.parent))
    assert store.save(BASELINE_NODEID, "H200", VLLM, built_one_kernel_summary(gpu="H200")) is True
    assert link.is_symlink() and link.resolve() == target
    assert set(json.loads(target.read_text())["entries"]) == {GPU, "H200"}


def test_dangling_symlink_reads_as_no_baseline_and_update_writes_its_target(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    link = store.path_for(BASELINE_NODEID)
    link.parent.mkdir(parents=True)
    target = tmp_path / "elsewhere.json"
    link.symlink_to(target)
    assert store.lookup(BASELINE_NODEID, GPU, VLLM).entry is None
    store.save(BASELINE_NODEID, GPU, VLLM, built_one_kernel_summary(gpu=GPU))
    assert link.is_symlink() and read_baseline_file(target).test == BASELINE_NODEID


def test_non_finite_summary_is_never_written(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    bad = built_one_kernel_summary(gpu=GPU)
    bad.steps[0].start_us = float("nan")  # start_us has no bound: only the NaN check stops it
    with pytest.raises(BaselineError, match="refusing to write a baseline that holds NaN or Infinity"):
        store.save(BASELINE_NODEID, GPU, VLLM, bad)
    assert not os.path.lexists(store.path_for(BASELINE_NODEID))


# ---- through the plugin: a bad baseline fails the test with the cause, no traceback ------------
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda text: re.sub(r'"total_kernel_us": [0-9.]+', '"total_kernel_us": NaN', text, count=1),
            "*baselines/test_workload/test_decode.json: baseline file holds the non-finite number NaN (line *",
        ),
        (
            lambda text: text.replace('"kernels"', '"k\udcffrnels"', 1),
            "*baselines/test_workload/test_decode.json: baseline file is not valid UTF-8 at byte * (0xff*",
        ),
    ],
    ids=["nan-fails-the-test", "invalid-utf8-names-the-byte"],
)
def test_bad_baseline_fails_the_plugin_test_with_its_cause(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble, edit: Callable[[str], str], expected: str
) -> None:
    record_baseline(pytester, recorded_trace_double)
    path = baseline_file(pytester)
    path.write_bytes(edit(path.read_text()).encode("utf-8", "surrogateescape"))
    recorded_trace_double.serve(REP0)
    result = run(pytester, recorded_trace_double)
    assert result.ret != 0
    result.stdout.fnmatch_lines([expected])
    assert "PASSED" not in result.stdout.str() and "UnicodeDecodeError" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()
