"""Step detection ("token peaks") on real vLLM traces."""

from __future__ import annotations

import pytest

from pytest_vllm_profile.analysis import StepDetector
from pytest_vllm_profile.errors import AnalysisError
from pytest_vllm_profile.events import Trace
from pytest_vllm_profile.trace.torch_reader import read_torch_trace


def _without_annotations(trace: Trace) -> Trace:
    """The same real trace with vLLM's step annotations dropped (as older vLLM / nsys give)."""
    ev = trace.events
    keep = ~ev["category"].isin(["gpu_user_annotation", "user_annotation"]).to_numpy()
    return Trace(events=ev[keep].reset_index(drop=True), metadata=trace.metadata)


@pytest.fixture(scope="module")
def base0(data_dir):
    return read_torch_trace(data_dir / "base-rep0.pt.trace.json.gz")


def test_annotation_steps_are_one_prefill_and_nine_decodes(base0):
    det = StepDetector().detect(base0)
    assert det.method == "annotation" and det.domain == "gpu"
    assert [s.kind for s in det.steps] == ["prefill"] + ["decode"] * 9
    first = det.steps[0]
    assert (first.prefill_requests, first.prefill_tokens, first.decode_requests) == (1, 7, 0)
    assert all(s.decode_requests == 1 and s.decode_tokens == 1 for s in det.steps[1:])


def test_annotation_steps_assign_kernels_inside_their_step(base0):
    det = StepDetector().detect(base0)
    ev = base0.events
    kern = ev[ev["category"] == "kernel"]
    inside = kern[kern["step"] >= 0]
    assert set(inside["step"]) == set(range(10))
    bounds = {s.index: (s.start_us, s.end_us) for s in det.steps}
    lo = inside["step"].map(lambda i: bounds[i][0])
    hi = inside["step"].map(lambda i: bounds[i][1])
    assert ((inside["start_us"] >= lo) & (inside["start_us"] <= hi)).all()
    # 36 attention launches per step: one per decoder layer
    attn = inside[inside["name"].str.contains("FlashAttnFwdSm90")]
    assert attn.groupby("step").size().tolist() == [36] * 10


def test_idle_scheduler_steps_are_not_token_steps(base0):
    # base-rep0 has 12 CPU step annotations, two of them execute_context_0(0)_generation_0(0)
    cpu_ann = base0.events[base0.events["category"] == "user_annotation"]
    assert (cpu_ann["name"] == "execute_context_0(0)_generation_0(0)").sum() == 2
    det = StepDetector().detect(base0)
    assert len(det.steps) == 10
    assert not any("generation_0(0)" in s.name and "context_0(0)" in s.name for s in det.steps)


@pytest.mark.parametrize("trace_name", ["base-rep0.pt.trace.json.gz", "base-rep1.pt.trace.json.gz"])
def test_gpu_activity_fallback_finds_the_same_ten_steps(data_dir, trace_name):
    real = read_torch_trace(data_dir / trace_name)
    annotated = StepDetector().detect(real)
    stripped = _without_annotations(read_torch_trace(data_dir / trace_name))
    det = StepDetector().detect(stripped)
    assert det.method == "gpu_activity"
    assert len(det.steps) == 10
    assert [s.kind for s in det.steps] == ["prefill"] + ["decode"] * 9
    assert all(s.prefill_requests is None for s in det.steps)
    # every fallback step overlaps exactly the annotated step of the same index
    for found, truth in zip(det.steps, annotated.steps, strict=False):
        mid = (truth.start_us + truth.end_us) / 2
        assert found.start_us <= mid <= found.end_us


def test_gpu_activity_fallback_on_eager_mixed_finds_21_steps(eager_mixed_trace):
    stripped = _without_annotations(read_torch_trace(eager_mixed_trace))
    det = StepDetector().detect(stripped)
    assert len(det.steps) == 21
    assert det.steps[0].kind == "prefill"


def test_cpu_only_trace_uses_cpu_annotations(data_dir):
    trace = read_torch_trace(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz")
    det = StepDetector().detect(trace)
    assert det.domain == "cpu" and det.method == "annotation"
    assert [s.kind for s in det.steps] == ["prefill"] + ["decode"] * 9
    ops = trace.events[trace.events["category"] == "cpu_op"]
    assert set(ops.loc[ops["step"] >= 0, "step"]) == set(range(10))


def test_no_annotations_and_no_gpu_events_is_a_clear_error(data_dir):
    stripped = _without_annotations(read_torch_trace(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz"))
    with pytest.raises(AnalysisError, match="no GPU events") as info:
        StepDetector().detect(stripped)
    assert "cpu-eager-tiny4" in str(info.value)
