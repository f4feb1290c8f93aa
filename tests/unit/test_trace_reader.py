"""The torch-profiler (Kineto) reader on real vLLM traces, and on real traces damaged in the test.

Counts were taken with a plain `gzip` + `orjson` script over the files (see tests/data/README.md).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pandas as pd
import pytest

from pytest_vllm_profile.errors import TraceError, VllmProfileError
from pytest_vllm_profile.events import check_event_table
from pytest_vllm_profile.trace import read_torch_trace, torch_reader


def _raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


@pytest.fixture(scope="module")
def base_rep0(data_dir: Path) -> Path:
    return data_dir / "base-rep0.pt.trace.json.gz"


@pytest.fixture(scope="module")
def base_rep0_trace(base_rep0: Path):
    return read_torch_trace(base_rep0)


def test_base_rep0_counts_and_contract(base_rep0_trace) -> None:
    events = base_rep0_trace.events
    check_event_table(events)
    # 26286 'ph': 'X' events (flows s/f, metadata M, instants i dropped), less the 17120
    # python_function frames that are not nn.Module frames (17131 frames, 11 module frames).
    assert len(events) == 9166
    assert base_rep0_trace.metadata.extra["python_frames_dropped"] == 17120
    assert (events["category"] == "python_function").sum() == 11
    kernels = events[events["category"] == "kernel"]
    assert len(kernels) == 5244
    assert kernels["dur_us"].sum() == pytest.approx(65558.887, abs=1e-3)
    assert (events["category"] == "gpu_user_annotation").sum() == 10
    assert base_rep0_trace.has_gpu_events
    assert base_rep0_trace.metadata.extra["parser"] == "stream"


def test_base_rep0_first_rows_keep_values(base_rep0_trace) -> None:
    events = base_rep0_trace.events
    first = events.iloc[0]
    assert first["name"] == "execute_context_1(7)_generation_0(0)"
    assert first["category"] == "user_annotation"
    assert first["start_us"] == 4561933117396.52
    assert first["end_us"] == pytest.approx(4561933117396.52 + 44926.937)
    assert (first["pid"], first["tid"], first["device"], first["stream"]) == (647, 647, -1, -1)
    assert first["external_id"] == 1 and first["correlation"] == -1
    kernel = events[events["category"] == "kernel"].iloc[0]
    assert kernel["name"] == "_apply_write_kernel"
    assert (kernel["device"], kernel["stream"], kernel["correlation"]) == (0, 7, 62)
    assert set(events["rank"]) == {0} and set(events["step"]) == {-1}


def test_gpu_annotation_rows_take_device_and_stream_from_pid_tid(base_rep0_trace) -> None:
    ann = base_rep0_trace.events[base_rep0_trace.events["category"] == "gpu_user_annotation"]
    assert set(ann["device"]) == {0} and set(ann["stream"]) == {7}
    cpu = base_rep0_trace.events[base_rep0_trace.events["category"] == "cpu_op"]
    assert set(cpu["device"]) == {-1} and set(cpu["stream"]) == {-1}


def test_non_numeric_pid_becomes_minus_one(base_rep0_trace) -> None:
    spans = base_rep0_trace.events[base_rep0_trace.events["category"] == "Trace"]
    assert len(spans) == 1  # the "PyTorch Profiler (0)" span, pid "Spans"
    assert spans.iloc[0]["pid"] == -1 and spans.iloc[0]["tid"] == -1


def test_metadata_from_h100_trace(base_rep0_trace) -> None:
    meta = base_rep0_trace.metadata
    assert meta.runtime.profiler == "torch"
    assert meta.device.name == "NVIDIA H100 80GB HBM3"
    assert meta.device.sm_count == 132
    assert meta.device.memory_bytes == 85017493504
    assert meta.device.compute_capability == "9.0"
    runtime = meta.runtime
    assert (runtime.cuda_driver_version, runtime.cuda_runtime_version, runtime.cupti_version) == (13000, 13000, 130001)
    assert (meta.rank, meta.world_size) == (0, 1)
    assert meta.with_stack is True
    assert meta.base_time_ns == 1790857026000000000
    assert meta.runtime.vllm_version is None  # vLLM 0.26 does not write it


def test_cpu_trace_is_first_class(data_dir: Path) -> None:
    trace = read_torch_trace(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz")
    check_event_table(trace.events)
    assert len(trace.events) == 11114  # 72076 X events less 60962 non-module python frames
    assert not trace.has_gpu_events
    assert trace.metadata.runtime.vllm_version == "0.32.0"
    assert trace.metadata.device.name is None
    assert trace.metadata.runtime.cuda_runtime_version is None


def test_rank_argument_overrides_recorded_rank(base_rep0: Path) -> None:
    trace = read_torch_trace(base_rep0, rank=3)
    assert trace.metadata.rank == 3
    assert set(trace.events["rank"]) == {3}


def test_names_are_shared_objects(base_rep0_trace) -> None:
    names = base_rep0_trace.events["name"]
    same = names[names == "_apply_write_kernel"]
    assert len(same) > 1
    assert len({id(v) for v in same}) == 1  # one string object, however many events use it


@pytest.mark.parametrize(
    "name",
    ["base-rep0.pt.trace.json.gz", "cpu-eager-tiny4.rank0.pt.trace.json.gz", "graphs-mixed.async_llm.pt.trace.json.gz"],
)
@pytest.mark.parametrize("keep_python_frames", [False, True])
def test_streaming_and_full_parsers_agree(data_dir: Path, name: str, keep_python_frames: bool) -> None:
    streamed = read_torch_trace(data_dir / name, parser="stream", keep_python_frames=keep_python_frames)
    full = read_torch_trace(data_dir / name, parser="full", keep_python_frames=keep_python_frames)
    assert full.metadata.extra["parser"] == "full"
    pd.testing.assert_frame_equal(streamed.events, full.events)
    dropped = full.metadata.extra.get("python_frames_dropped")
    assert streamed.metadata.extra.get("python_frames_dropped") == dropped


@pytest.mark.parametrize("keep_python_frames", [False, True])
def test_streaming_in_small_blocks_agrees(
    base_rep0: Path, monkeypatch: pytest.MonkeyPatch, keep_python_frames: bool
) -> None:
    # 64 KiB blocks: hundreds of slices, event boundaries cut at every possible place; some
    # slices hold only python frames, so the byte filter leaves nothing to decode there.
    monkeypatch.setattr(torch_reader, "_BLOCK_BYTES", 64 << 10)
    small = read_torch_trace(base_rep0, parser="stream", keep_python_frames=keep_python_frames)
    monkeypatch.undo()
    full = read_torch_trace(base_rep0, parser="full", keep_python_frames=keep_python_frames)
    pd.testing.assert_frame_equal(small.events, full.events)


def test_eager_mixed_trace_counts_and_parsers_agree(eager_mixed_trace: Path) -> None:
    streamed = read_torch_trace(eager_mixed_trace)
    assert streamed.metadata.extra["parser"] == "stream"
    assert len(streamed.events) == 105102  # 326766 X events less 221664 non-module python frames
    assert (streamed.events["category"] == "kernel").sum() == 11740
    assert (streamed.events["category"] == "gpu_user_annotation").sum() == 21
    pd.testing.assert_frame_equal(streamed.events, read_torch_trace(eager_mixed_trace, parser="full").events)


def test_plain_json_and_other_layouts_are_streamed_too(base_rep0: Path, base_rep0_trace, tmp_path: Path) -> None:
    raw = _raw(base_rep0)
    plain = tmp_path / "rank0.pt.trace.json"
    plain.write_bytes(raw)
    assert read_torch_trace(plain).metadata.extra["parser"] == "stream"
    pd.testing.assert_frame_equal(read_torch_trace(plain).events, base_rep0_trace.events)

    compact = tmp_path / "compact.pt.trace.json"  # the same document on one line
    compact.write_bytes(orjson.dumps(orjson.loads(raw)))
    trace = read_torch_trace(compact)
    assert trace.metadata.extra["parser"] == "any-layout"  # bounded memory, not a whole-document parse
    pd.testing.assert_frame_equal(trace.events, base_rep0_trace.events)
    with pytest.raises(TraceError, match="not in Kineto's layout"):
        read_torch_trace(compact, parser="stream")


# ----------------------------------------------------------------------------- bad input


def test_truncated_gzip(base_rep0: Path, tmp_path: Path) -> None:
    cut = tmp_path / "rank0.pt.trace.json.gz"
    data = base_rep0.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="truncated: the gzip stream ends early") as info:
        read_torch_trace(cut)
    assert str(cut) in str(info.value)
    assert "stop_profile" in str(info.value)


def test_json_cut_midway(base_rep0: Path, tmp_path: Path) -> None:
    raw = _raw(base_rep0)
    cut = tmp_path / "cut.pt.trace.json.gz"
    cut.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(TraceError, match="invalid JSON: the text ends early") as info:
        read_torch_trace(cut)
    assert info.value.path == str(cut)


def test_invalid_json_names_byte_and_line(base_rep0: Path, tmp_path: Path) -> None:
    raw = _raw(base_rep0)
    at = raw.index(b'"ph": "X"', 1_000_000)
    broken = raw[:at] + b'"ph": X"' + raw[at + len(b'"ph": "X"') :]
    path = tmp_path / "broken.pt.trace.json.gz"
    path.write_bytes(gzip.compress(broken))
    line = raw.count(b"\n", 0, at) + 1
    with pytest.raises(TraceError, match=rf"invalid JSON at byte {at + 6} \(line {line}\)"):
        read_torch_trace(path)


def test_valid_json_that_is_not_a_trace(tmp_path: Path, data_dir: Path) -> None:
    doc = orjson.loads(_raw(data_dir / "base-rep0.pt.trace.json.gz"))
    del doc["traceEvents"]
    path = tmp_path / "meta-only.json"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(TraceError, match="not a torch-profiler trace: no 'traceEvents' list"):
        read_torch_trace(path)
    listing = tmp_path / "list.json"
    listing.write_bytes(orjson.dumps([1, 2, 3]))
    with pytest.raises(TraceError, match="top level is a list"):
        read_torch_trace(listing)


@pytest.mark.parametrize("content", [b"", b"  \n", gzip.compress(b"", mtime=0)], ids=["empty", "blank", "empty-gzip"])
def test_empty_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.pt.trace.json.gz"
    path.write_bytes(content)
    with pytest.raises(TraceError, match="empty file"):
        read_torch_trace(path)


def test_not_gzip_data_behind_gz_name_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.pt.trace.json.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage-after-gzip-magic" * 10)
    with pytest.raises(TraceError, match="corrupt gzip data"):
        read_torch_trace(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VllmProfileError, match="no such file"):
        read_torch_trace(tmp_path / "absent.json.gz")


# ----------------------------------------------------------------------------- python frames


def _without_non_module_frames(events: pd.DataFrame) -> pd.DataFrame:
    is_py = (events["category"] == "python_function").to_numpy()
    is_module = events["name"].str.startswith("nn.Module: ").to_numpy()
    return events[~is_py | is_module].reset_index(drop=True)


@pytest.mark.parametrize("parser", ["stream", "full"])
def test_python_frames_kept_only_for_modules_by_default(data_dir: Path, parser: str) -> None:
    # The real CPU eager trace (with_stack): 61572 python frames, 610 of them nn.Module frames.
    path = data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz"
    all_frames = read_torch_trace(path, parser=parser, keep_python_frames=True)
    default = read_torch_trace(path, parser=parser)
    assert (all_frames.events["category"] == "python_function").sum() == 61572
    assert "python_frames_dropped" not in all_frames.metadata.extra
    py = default.events[default.events["category"] == "python_function"]
    assert len(py) == 610 and py["name"].str.startswith("nn.Module: ").all()
    assert default.metadata.extra["python_frames_dropped"] == 61572 - 610
    # Identical to the full table with the other frames removed: same rows, order and values
    # (categories too: python_function stays a category because module frames remain).
    pd.testing.assert_frame_equal(default.events, _without_non_module_frames(all_frames.events))


def test_python_frame_filter_on_eager_h100_trace_keeps_layers(eager_mixed_trace: Path) -> None:
    from pytest_vllm_profile.analysis.layers import LayerDetector
    from pytest_vllm_profile.analysis.steps import StepDetector

    default = read_torch_trace(eager_mixed_trace)
    all_frames = read_torch_trace(eager_mixed_trace, keep_python_frames=True)
    assert len(all_frames.events) == 326766
    pd.testing.assert_frame_equal(default.events, _without_non_module_frames(all_frames.events))
    modules = default.events[default.events["category"] == "python_function"]
    assert len(modules) == 10668
    assert modules["name"].str.fullmatch(r"nn\.Module: \w*DecoderLayer_\d+").sum() > 0
    steps = StepDetector().detect(default)
    layers = LayerDetector().detect(default, steps.domain, method="module")
    assert (layers.method, layers.layer_count) == ("module", 36)


def test_byte_filter_only_cuts_non_module_python_frames() -> None:
    b = torch_reader._EVENT_BOUNDARY
    frame = torch_reader._PY_FRAME_START + b'x.py(1): f", "pid": 1, "tid": 1,\n    "ts": 1, "dur": 1'
    module = torch_reader._PY_FRAME_START + b'nn.Module: Qwen3DecoderLayer_0", "pid": 1, "tid": 1'
    kernel = b'\n    "ph": "X", "cat": "kernel", "name": "python_function", "pid": 0, "tid": 7'
    assert torch_reader._drop_python_frames(b.join([kernel, frame, module, frame])) == ([kernel, module], 2)
    assert torch_reader._drop_python_frames(b.join([frame, frame])) == ([], 2)
    assert torch_reader._drop_python_frames(kernel) == ([kernel], 0)
