"""BaselineStore: file layout, schema validation on read and write, atomic + locked updates."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from pytest_vllm_profile.baseline import BaselineStore, baseline_relpath, keys_for_summary, read_baseline_file
from pytest_vllm_profile.codec import to_builtins
from pytest_vllm_profile.errors import BaselineError
from pytest_vllm_profile.repeats import RepeatSpread
from pytest_vllm_profile.schemas import SchemaValidationError, load_schema, validate_summary
from support.summaries import BASELINE_NODEID, built_one_kernel_summary


def test_path_layout_from_nodeid(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    assert store.path_for("tests/test_a.py::test_b") == tmp_path / "baselines" / "tests" / "test_a" / "test_b.json"
    assert baseline_relpath("tests/test_a.py::TestX::test_b[1-2]") == Path("tests/test_a/TestX.test_b[1-2].json")
    # characters unsafe in file names are replaced, and a hash keeps distinct params distinct
    p1 = baseline_relpath("tests/test_a.py::test_b[a/b]")
    p2 = baseline_relpath("tests/test_a.py::test_b[a:b]")
    assert p1 != p2 and "/" not in p1.name and ":" not in p2.name
    assert ".." not in baseline_relpath("../evil.py::test_x").parts


def test_save_then_load_round_trips_and_validates(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    summary = built_one_kernel_summary()
    spread = RepeatSpread(
        repeats=3,
        total_kernel_us=0.004,
        step_op_time_us={"decode": 0.003},
        kernel_us_per_step={"decode": {"nvjet_gemm": 0.002}},
        layer_time_us={"decode": []},
    )
    changed = store.save(
        BASELINE_NODEID,
        "NVIDIA H100 80GB HBM3",
        "0.26.0",
        summary,
        workload={"model": "m", "max_tokens": 10},
        repeats=3,
        spread=spread,
        commit="abc123",
    )
    assert changed is True
    path = store.path_for(BASELINE_NODEID)
    document = json.loads(path.read_text())
    assert document["test"] == BASELINE_NODEID and document["schema_version"] == 2
    entry_json = document["entries"]["NVIDIA H100 80GB HBM3"]["0.26.0"]
    assert set(entry_json) == {"created", "commit", "workload", "repeats", "summary", "spread"}
    entry = store.load(BASELINE_NODEID, "NVIDIA H100 80GB HBM3", "0.26.0")
    assert entry is not None
    assert entry.summary == summary
    assert entry.spread == spread
    assert (entry.repeats, entry.commit, entry.workload["max_tokens"]) == (3, "abc123", 10)
    assert store.load(BASELINE_NODEID, "NVIDIA H100 80GB HBM3", "0.27.0") is None
    assert store.load("tests/other.py::test_x", "NVIDIA H100 80GB HBM3", "0.26.0") is None


def test_save_reports_change_ignoring_created(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    assert (
        store.save(BASELINE_NODEID, "H100", "0.26.0", built_one_kernel_summary(), created="2025-01-01T00:00:00Z")
        is True
    )
    before = store.path_for(BASELINE_NODEID).read_text()
    assert (
        store.save(BASELINE_NODEID, "H100", "0.26.0", built_one_kernel_summary(), created="2025-06-01T00:00:00Z")
        is False
    )
    assert store.path_for(BASELINE_NODEID).read_text() == before  # unchanged content: file untouched
    assert store.save(BASELINE_NODEID, "H100", "0.26.0", built_one_kernel_summary(decode_us=6100.0)) is True
    assert store.load(BASELINE_NODEID, "H100", "0.26.0").summary.step_kinds["decode"].median_op_time_us == 6100.0


def test_entries_keyed_by_gpu_and_vllm_version_in_one_file(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save(BASELINE_NODEID, "H100", "0.26.0", built_one_kernel_summary(6000.0))
    store.save(BASELINE_NODEID, "H200", "0.26.0", built_one_kernel_summary(5000.0))
    store.save(BASELINE_NODEID, None, None, built_one_kernel_summary(90000.0, gpu=None, vllm=None))
    document = json.loads(store.path_for(BASELINE_NODEID).read_text())
    assert sorted(document["entries"]) == ["H100", "H200", "cpu"]
    assert list(document["entries"]["cpu"]) == ["unknown"]
    assert store.load(BASELINE_NODEID, "H200", "0.26.0").summary.total_kernel_us == 45000.0
    assert keys_for_summary(built_one_kernel_summary(gpu=None, vllm=None)) == ("cpu", "unknown")
    assert [(e.gpu, e.vllm_version) for e in store.entries(BASELINE_NODEID)] == [
        ("H100", "0.26.0"),
        ("H200", "0.26.0"),
        ("cpu", "unknown"),
    ]


def test_lookup_names_the_versions_that_exist(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save(BASELINE_NODEID, "H100", "0.9.2", built_one_kernel_summary())
    store.save(BASELINE_NODEID, "H100", "0.10.1", built_one_kernel_summary(6100.0))
    found = store.lookup(BASELINE_NODEID, "H100", "0.26.0")
    assert found.entry is None
    assert found.other_versions == ["0.9.2", "0.10.1"]
    assert "no baseline for vLLM 0.26.0 on H100" in found.message and "0.9.2, 0.10.1" in found.message
    assert found.fallback is not None and found.fallback.vllm_version == "0.10.1"
    other_gpu = store.lookup(BASELINE_NODEID, "A100", "0.26.0")
    assert other_gpu.entry is None and other_gpu.fallback is None and "GPU(s) H100" in other_gpu.message
    exact = store.lookup(BASELINE_NODEID, "H100", "0.9.2")
    assert exact.entry is not None and exact.message == ""
    assert "no baseline file" in store.lookup("tests/x.py::t", "H100", "0.26.0").message


def test_invalid_file_is_reported_with_pointer_and_never_overwritten(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save(BASELINE_NODEID, "H100", "0.26.0", built_one_kernel_summary())
    path = store.path_for(BASELINE_NODEID)
    document = json.loads(path.read_text())
    document["entries"]["H100"]["0.26.0"]["summary"]["token_steps"] = "nine"
    path.write_text(json.dumps(document))
    broken = path.read_text()
    with pytest.raises(BaselineError) as info:
        store.load(BASELINE_NODEID, "H100", "0.26.0")
    message = str(info.value)
    assert str(path) in message
    assert "/entries/H100/0.26.0/summary/token_steps" in message
    assert "'nine' is not of type 'integer'" in message
    with pytest.raises(BaselineError):
        store.save(BASELINE_NODEID, "H200", "0.26.0", built_one_kernel_summary())
    assert path.read_text() == broken


def test_corrupt_json_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(BASELINE_NODEID)
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 1, "test": ')
    with pytest.raises(BaselineError, match=r"not valid JSON \(line 1"):
        store.load(BASELINE_NODEID, "H100", "0.26.0")
    with pytest.raises(BaselineError, match="never overwritten"):
        store.save(BASELINE_NODEID, "H100", "0.26.0", built_one_kernel_summary())
    assert path.read_text() == '{"schema_version": 1, "test": '


def test_file_of_another_test_is_refused(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save(BASELINE_NODEID, "H100", "0.26.0", built_one_kernel_summary())
    path = store.path_for(BASELINE_NODEID)
    document = json.loads(path.read_text())
    document["test"] = "tests/perf/test_qwen.py::something_else"
    path.write_text(json.dumps(document))
    with pytest.raises(BaselineError, match="belongs to test"):
        store.load(BASELINE_NODEID, "H100", "0.26.0")


def test_write_of_invalid_summary_is_refused(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    bad = built_one_kernel_summary()
    bad.timing_domain = "tpu"
    with pytest.raises(BaselineError, match="/summary/timing_domain"):
        store.save(BASELINE_NODEID, "H100", "0.26.0", bad)
    assert not store.path_for(BASELINE_NODEID).exists()


def test_schemas_are_shipped_draft_2020_12() -> None:
    for name in ("summary.schema.json", "baseline.schema.json"):
        assert load_schema(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    with pytest.raises(SchemaValidationError, match="/steps/0/kind"):
        d = to_builtins(built_one_kernel_summary())
        d["steps"][0]["kind"] = "warmup"
        validate_summary(d, "x")


def _writer(root: str, worker: int, rounds: int) -> None:
    store = BaselineStore(root)
    for r in range(rounds):
        # every worker updates the SAME file (one GPU each) and its own test's file
        store.save(BASELINE_NODEID, f"GPU{worker}", "0.26.0", built_one_kernel_summary(6000.0 + r))
        store.save(f"tests/perf/test_w{worker}.py::test_x", "H100", "0.26.0", built_one_kernel_summary(6000.0 + r))


def test_concurrent_processes_do_not_lose_entries(tmp_path: Path) -> None:
    # four real processes, as pytest-xdist -n 4 would run them, racing on read-modify-write
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 8)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    document = read_baseline_file(BaselineStore(tmp_path).path_for(BASELINE_NODEID))
    assert sorted(document.entries) == ["GPU0", "GPU1", "GPU2", "GPU3"]
    for w in range(4):
        last = document.entries[f"GPU{w}"]["0.26.0"].summary.total_kernel_us
        assert last == 9 * 6007.0
        assert BaselineStore(tmp_path).load(f"tests/perf/test_w{w}.py::test_x", "H100", "0.26.0") is not None
    assert not list(tmp_path.rglob("*.tmp"))


def test_real_repeats_saved_as_baseline_round_trip(tmp_path: Path, data_dir: Path) -> None:
    from pytest_vllm_profile.analysis import summarize_path
    from pytest_vllm_profile.repeats import combine_repeats

    reps = [summarize_path(data_dir / f"base-rep{i}.pt.trace.json.gz") for i in (0, 1)]
    median, spread = combine_repeats(reps)
    gpu, vllm = keys_for_summary(median)
    assert gpu == reps[0].device.name and gpu != "cpu"
    store = BaselineStore(tmp_path)
    assert store.save(BASELINE_NODEID, gpu, vllm, median, repeats=2, spread=spread, workload={"max_tokens": 10}) is True
    entry = store.load(BASELINE_NODEID, gpu, vllm)
    assert entry is not None and entry.summary == median and entry.spread == spread
    assert entry.summary.token_steps == 10 and entry.summary.layer_count == 36
    # the median of two repeats lies between them
    lo, hi = sorted(r.step_kinds["decode"].median_op_time_us for r in reps)
    assert lo <= entry.summary.step_kinds["decode"].median_op_time_us <= hi
    assert 0 < entry.spread.step_op_time_us["decode"] < 0.01
