"""Decoder-layer detection ("layer peaks") on real vLLM traces."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_vllm_profile.analysis import LayerDetector, StepDetector
from pytest_vllm_profile.trace.torch_reader import read_torch_trace


def _detected(path, **kw):
    trace = read_torch_trace(path)
    steps = StepDetector().detect(trace)
    return trace, steps, LayerDetector().detect(trace, steps.domain, **kw)


@pytest.mark.parametrize("trace_name", ["base-rep0.pt.trace.json.gz", "base-rep1.pt.trace.json.gz"])
def test_cuda_graph_trace_layers_from_kernel_pattern(data_dir, trace_name):
    _, steps, layers = _detected(data_dir / trace_name)
    assert layers.method == "kernel_pattern"
    assert layers.layer_count == 36
    assert layers.marker == "flash::FlashAttnFwdSm90"
    per_step = layers.timings.groupby("step")["layer"].nunique()
    assert per_step.tolist() == [36] * len(steps.steps)
    # layers are alike: every decode layer within 10 % of the median layer
    decode = [s.index for s in steps.steps if s.kind == "decode"]
    t = layers.timings[layers.timings["step"].isin(decode)]["time_us"]
    assert (abs(t / t.median() - 1) < 0.10).all()


def test_layers_cover_most_of_the_step_kernel_time(data_dir):
    trace, steps, layers = _detected(data_dir / "base-rep0.pt.trace.json.gz")
    kern = trace.events[(trace.events["category"] == "kernel") & (trace.events["step"] == 1)]
    layer_sum = layers.of_step(1)["time_us"].sum()
    assert 0.9 * kern["dur_us"].sum() < layer_sum <= kern["dur_us"].sum() + 1e-6


def test_eager_trace_module_and_kernel_pattern_agree_within_5_percent(eager_mixed_trace):
    trace = read_torch_trace(eager_mixed_trace)
    StepDetector().detect(trace)
    module = LayerDetector().detect(trace, method="module")
    pattern = LayerDetector().detect(trace, method="kernel_pattern")
    assert module.method == "module" and pattern.method == "kernel_pattern"
    assert module.layer_count == pattern.layer_count == 36
    assert module.timings["step"].nunique() == 21
    a = module.timings.set_index(["step", "layer"])["time_us"]
    b = pattern.timings.set_index(["step", "layer"])["time_us"].reindex(a.index)
    assert b.notna().all()
    rel = np.abs(b / a - 1)
    assert rel.max() < 0.05, rel.sort_values().tail()


def test_cpu_trace_layers_from_module_events(data_dir):
    _, steps, layers = _detected(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz")
    assert steps.domain == "cpu"
    assert layers.method == "module" and layers.layer_count == 4
    assert len(layers.timings) == 10 * 4
    assert (layers.timings["time_us"] > 0).all()
