"""Per-step CPU overhead (wall, GPU busy/idle, launches) on the REAL traces in tests/data."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from pytest_vllm_profile.analysis import StepDetector
from pytest_vllm_profile.analysis.step_overhead import StepOverheadAnalysis, step_overhead, union_length
from pytest_vllm_profile.events import Trace
from pytest_vllm_profile.trace.torch_reader import read_torch_trace


def _analysed(path: Path) -> tuple[Trace, StepOverheadAnalysis]:
    trace = read_torch_trace(path)
    return trace, step_overhead(trace, StepDetector().detect(trace))


@pytest.fixture(scope="module")
def graphs(data_dir: Path) -> tuple[Trace, StepOverheadAnalysis]:
    return _analysed(data_dir / "base-rep0.pt.trace.json.gz")


@pytest.fixture(scope="module")
def eager(eager_mixed_trace: Path) -> tuple[Trace, StepOverheadAnalysis]:
    return _analysed(eager_mixed_trace)


def _merged_length_by_loop(intervals: list[tuple[float, float]]) -> float:
    """Independent union: plain sort-and-merge over (start, end) pairs."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def test_union_length_counts_overlap_once() -> None:
    starts = np.array([0.0, 5.0, 2.0, 20.0, 21.0])
    ends = np.array([4.0, 10.0, 6.0, 25.0, 22.0])
    # [0,10] and [20,25]
    assert union_length(starts, ends) == pytest.approx(15.0)
    assert union_length(np.array([]), np.array([])) == 0.0


@pytest.mark.parametrize("which", ["graphs", "eager"])
def test_busy_matches_an_independent_union_of_kernels_inside_each_step(which: str, request) -> None:
    trace, analysis = request.getfixturevalue(which)
    det = StepDetector().detect(trace)
    ev = trace.events
    kern = ev[ev["category"] == "kernel"]
    ks, ke = kern["start_us"].to_numpy(), kern["end_us"].to_numpy()
    by_index = {s.index: s for s in det.steps}
    for st in analysis.steps:
        bounds = by_index[st.step]
        # selected by time here, not through the step column
        inside = (ks >= bounds.start_us) & (ks <= bounds.end_us)
        expected = _merged_length_by_loop(
            [(max(a, bounds.start_us), min(b, bounds.end_us)) for a, b in zip(ks[inside], ke[inside], strict=True)]
        )
        assert st.gpu_busy_us == pytest.approx(expected, rel=1e-9, abs=1e-6)
        assert st.kernels == int(inside.sum())
        assert 0 < st.gpu_busy_us <= st.wall_us
        assert st.gpu_idle_us == pytest.approx(st.wall_us - st.gpu_busy_us)


def test_eager_steps_launch_every_kernel_graph_steps_replay_graphs(graphs, eager) -> None:
    _, g = graphs
    _, e = eager
    g_decode, e_decode = g.kinds["decode"], e.kinds["decode"]
    # eager: one host launch per kernel, no graphs; graphs: a handful of launches plus one replay
    assert e_decode.median_graph_launches == 0
    assert all(s.kernel_launches == s.kernels for s in e.steps if s.kind == "decode")
    assert g_decode.median_graph_launches >= 1
    assert g_decode.median_kernel_launches * 10 < e_decode.median_kernel_launches
    # the host-bound eager decode step leaves the GPU idle most of the time, the graph one does not
    assert e_decode.gpu_idle_fraction > 0.5 > g_decode.gpu_idle_fraction
    assert e_decode.median_wall_us > 3 * g_decode.median_wall_us


def test_launch_counts_match_runtime_events_on_the_annotating_thread(graphs) -> None:
    trace, analysis = graphs
    ev = trace.events
    cpu_ann = ev[(ev["category"] == "user_annotation") & ev["name"].str.startswith("execute_context_")]
    cpu_ann = cpu_ann[~cpu_ann["name"].str.startswith("execute_context_0(0)_generation_0(0)")]
    cpu_ann = cpu_ann.sort_values("start_us")
    thread = set(zip(cpu_ann["pid"], cpu_ann["tid"], strict=True))
    rt = ev[ev["name"].isin(["cudaGraphLaunch"])]
    rt = rt[[(p, t) in thread for p, t in zip(rt["pid"], rt["tid"], strict=True)]]
    assert len(cpu_ann) == len(analysis.steps)
    for step, (_, ann) in zip(analysis.steps, cpu_ann.iterrows(), strict=True):
        inside = (rt["start_us"] >= ann["start_us"]) & (rt["start_us"] <= ann["end_us"])
        assert step.graph_launches == int(inside.sum())


def test_period_runs_to_the_next_step_and_covers_the_step(graphs) -> None:
    _, analysis = graphs
    assert analysis.steps[-1].period_us is None
    for a, b in pairwise(analysis.steps):
        assert a.period_us == pytest.approx(b.start_us - a.start_us)
        assert a.period_us >= a.wall_us


def test_cpu_only_trace_reports_gpu_metrics_as_not_applicable(data_dir: Path) -> None:
    _, analysis = _analysed(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz")
    assert analysis.timing_domain == "cpu"
    assert len(analysis.steps) == 10
    assert all(s.gpu_busy_us is None and s.kernel_launches is None and s.graph_launches is None for s in analysis.steps)
    assert all(s.wall_us > 0 for s in analysis.steps)
    decode = analysis.kinds["decode"]
    assert decode.steps == 9 and decode.gpu_idle_fraction is None
    assert decode.median_wall_us < analysis.kinds["prefill"].median_wall_us
    assert any("CPU-only" in n for n in analysis.notes)
