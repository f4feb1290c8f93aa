"""The typed model: JSON round-trips of every type, files of 0.1.0 still load, the shipped
schemas are the model's, and values outside a Literal are refused naming the field."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import msgspec
import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.baseline import BaselineEntry, BaselineFile, BaselineStore, read_baseline_file
from pytest_vllm_profile.codec import ModelDecodeError, decode_json, encode_json, from_builtins, to_builtins
from pytest_vllm_profile.comparator import Tolerances, compare_summaries
from pytest_vllm_profile.comparison import Comparison
from pytest_vllm_profile.errors import BaselineError
from pytest_vllm_profile.history import HistoryEntry, TestHistory
from pytest_vllm_profile.repeats import RepeatSpread, combine_repeats
from pytest_vllm_profile.report import load_results
from pytest_vllm_profile.results import RequestResult, RunResults, TestResult
from pytest_vllm_profile.schemas import BASELINE_SCHEMA, SUMMARY_SCHEMA, load_schema
from pytest_vllm_profile.schemas.generate import generate, schema_text
from pytest_vllm_profile.summary import STEP_KINDS, ProfileSummary
from support.paths import DATA, REPO
from support.summaries import built_summary

# The GPU suite's H100 baselines as 0.1.0 wrote them (schema_version 1; copied from baselines/
# before the H200 entries were added, which rewrote those files as version 2).
V1_BASELINES = sorted((DATA / "baselines-v1").glob("*.json"))
COMMITTED_BASELINES = sorted((REPO / "baselines").rglob("*.json"))
V1_SUMMARY = "cpu-eager-tiny4.summary-v1.json"
V1_RESULTS = "results-v1.json"


def as_v2_text(v1_text: str) -> str:
    """A 0.1.0 file's text as version 2 writes it: every `*gpu_time_us` key and the step-time
    metric renamed to `op_time_us`, each schema_version 1 -> 2 (a text edit, independent of schema_v1)."""
    return v1_text.replace("gpu_time_us", "op_time_us").replace('"schema_version": 1', '"schema_version": 2')


@pytest.fixture(scope="module")
def cpu_summary(data_dir: Path) -> ProfileSummary:
    return summarize_path(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz")


@pytest.fixture(scope="module")
def drifted_comparison() -> Comparison:
    base = built_summary()
    cand = built_summary(scale={"decode": 1.2})
    cand.kernels[0].name = cand.kernels[0].short_name = "attn_fwd_v2"
    result = compare_summaries(base, cand, Tolerances())
    assert result.regressions and result.new_kernels and result.missing_kernels and result.step_times
    return result


def test_step_kinds_are_the_literal_type() -> None:
    assert STEP_KINDS == ("prefill", "decode", "mixed")


def test_summary_of_a_real_trace_round_trips(cpu_summary: ProfileSummary) -> None:
    text = encode_json(cpu_summary)
    again = decode_json(text, ProfileSummary)
    assert again == cpu_summary and encode_json(again) == text
    assert again.timing_domain == "cpu" and again.steps[0].kind in STEP_KINDS


def test_spread_comparison_and_results_round_trip(data_dir: Path, drifted_comparison: Comparison) -> None:
    reps = [summarize_path(data_dir / f"h100-batch4-rep{i}.rank0.pt.trace.json.gz") for i in (0, 1)]
    combined, spread = combine_repeats(reps)
    assert decode_json(encode_json(spread), RepeatSpread) == spread and spread.unstable_kernels
    assert decode_json(encode_json(drifted_comparison), Comparison) == drifted_comparison
    request = RequestResult(latency_s=0.5, prompt_tokens=7, completion_tokens=10)
    test = TestResult(
        nodeid="t.py::a",
        outcome="failed",
        verdict="fail",
        message="slower",
        workload={"max_tokens": 10},
        summary=combined,
        baseline_summary=reps[0],
        comparison=drifted_comparison,
        requests=[request],
        trace_paths=["x.json.gz"],
        baseline_path="b.json",
        duration_s=1.5,
        server_boot_s=30.0,
    )
    results = RunResults(
        created="2026-12-02T04:00:00Z", commit="abc", gpu="H100", tests=[test, TestResult("b", "skipped")]
    )
    again = decode_json(encode_json(results), RunResults)
    assert again == results
    assert again.tests[0].summary == combined and again.tests[0].comparison == drifted_comparison


def test_baseline_entry_and_file_round_trip(tmp_path: Path, cpu_summary: ProfileSummary) -> None:
    spread = RepeatSpread(repeats=3, total_kernel_us=0.01, step_op_time_us={"decode": 0.02})
    store = BaselineStore(tmp_path)
    assert store.save(
        "t.py::a", None, "0.32.0", cpu_summary, workload={"prompts": ("a", "b")}, repeats=3, spread=spread, commit="abc"
    )
    document = read_baseline_file(store.path_for("t.py::a"))
    assert decode_json(encode_json(document), BaselineFile) == document
    entry = store.load("t.py::a", None, "0.32.0")
    assert isinstance(entry, BaselineEntry)
    assert (entry.gpu, entry.vllm_version, entry.summary, entry.spread) == ("cpu", "0.32.0", cpu_summary, spread)
    assert entry.workload == {"prompts": ["a", "b"]}  # tuples come back as JSON lists
    assert BaselineEntry.of(entry.gpu, entry.vllm_version, entry.record()) == BaselineEntry.of(
        "cpu", "0.32.0", document.entries["cpu"]["0.32.0"]
    )


def test_history_entry_round_trips() -> None:
    entry = HistoryEntry(
        date="2026-12-02T04:00:00Z",
        commit="abc",
        gpu="H100",
        vllm_version="0.26.0",
        tests={"t.py::a": TestHistory("pass", {"decode": 6000.5}, "gpu")},
    )
    assert decode_json(encode_json(entry, indent=None), HistoryEntry) == entry


@pytest.mark.parametrize("path", V1_BASELINES, ids=[p.name for p in V1_BASELINES])
def test_v1_baselines_load_migrated_and_are_left_as_they_are(path: Path, tmp_path: Path) -> None:
    document = read_baseline_file(path)
    assert document.schema_version == 2 and document.entries
    text = path.read_text()
    assert json.loads(text)["schema_version"] == 1
    # Nothing is lost or added: the typed document gives back the file's JSON in the v2 layout
    # (the step-time fields renamed, schema_version 2), spelled here by text, not by the migration.
    assert json.loads(json.dumps(to_builtins(document))) == json.loads(as_v2_text(text))
    store = BaselineStore(tmp_path)
    entries = [
        BaselineEntry.of(gpu, version, record)
        for gpu, versions in document.entries.items()
        for version, record in versions.items()
    ]
    assert all(e.summary.token_steps > 0 and e.summary.steps for e in entries)
    target = store.path_for(document.test)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, target)
    first = entries[0]
    # Re-recording an identical entry leaves a 0.1.0 file untouched (still version 1 on disk).
    assert not store.save(
        document.test,
        first.gpu,
        first.vllm_version,
        first.summary,
        workload=first.workload,
        repeats=first.repeats,
        spread=first.spread,
        commit=first.commit,
    )
    assert target.read_bytes() == path.read_bytes()


def test_v1_summary_file_loads_migrated_and_encodes_to_the_v2_text(data_dir: Path, cpu_summary: ProfileSummary) -> None:
    path = data_dir / V1_SUMMARY
    loaded = ProfileSummary.load(path)
    assert loaded.schema_version == 2 and loaded.timing_domain == "cpu"
    assert [s.op_time_us for s in loaded.steps] == [s["gpu_time_us"] for s in json.loads(path.read_text())["steps"]]
    # The v2 file is the v1 text with the step-time keys renamed and the version bumped, byte for byte.
    assert encode_json(loaded) + "\n" == as_v2_text(path.read_text())
    assert "gpu_time_us" not in encode_json(loaded)
    # and the analysis still gives what 0.1.0 gave (the file was made from the repository root),
    # plus the step overhead added in 0.2 (issue 12), which 0.1.0 files lack
    assert cpu_summary.overhead_by_kind() and all(s.period_us is not msgspec.UNSET for s in cpu_summary.steps)
    overhead = ("period_us", "gpu_busy_us", "gpu_idle_us", "kernel_launches", "graph_launches")
    without_overhead = msgspec.structs.replace(
        cpu_summary,
        source=["tests/data/cpu-eager-tiny4.rank0.pt.trace.json.gz"],
        step_overhead=msgspec.UNSET,
        steps=[msgspec.structs.replace(s, **dict.fromkeys(overhead, msgspec.UNSET)) for s in cpu_summary.steps],
    )
    assert loaded == without_overhead


def test_v1_results_file_loads_migrated_with_typed_summary_and_comparison(data_dir: Path) -> None:
    results = load_results(data_dir / V1_RESULTS)
    assert results == RunResults.load(data_dir / V1_RESULTS)
    assert results.schema_version == 2 and results.tests[0].summary.schema_version == 2
    assert "step.decode.op_time_us" in [f.metric for f in results.tests[0].comparison.regressions]
    failed, skipped = results.tests
    assert isinstance(failed.summary, ProfileSummary) and isinstance(failed.comparison, Comparison)
    assert failed.comparison.verdict == "fail" and failed.comparison.regressions
    assert failed.comparison.new_kernel_names == ["renamed_op"] and len(failed.comparison.missing_kernels) == 2
    assert failed.requests == [RequestResult(0.5, 7, 8)]
    assert skipped.outcome == "skipped" and skipped.summary is None and skipped.comparison is None
    raw = json.loads(as_v2_text((data_dir / V1_RESULTS).read_text()))
    again = json.loads(encode_json(results))
    # The same JSON comes back out, plus only fields added since 0.1.0 (at any depth), at their empty default.
    added: list[str] = []

    def drop_added(new: object, old: object, where: str) -> None:
        if isinstance(new, dict) and isinstance(old, dict):
            for key in [k for k in new if k not in old]:
                assert new[key] is None, f"{where}/{key} added with a value: {new[key]!r}"
                added.append(f"{where}/{key}")
                del new[key]
            for key in new:
                drop_added(new[key], old[key], f"{where}/{key}")
        elif isinstance(new, list) and isinstance(old, list):
            for i, (n, o) in enumerate(zip(new, old, strict=False)):
                drop_added(n, o, f"{where}[{i}]")

    drop_added(again, raw, "")
    assert "/tests[0]/configuration" in added  # issue 15's field, at its default
    assert again == raw


@pytest.mark.parametrize("name", [SUMMARY_SCHEMA, BASELINE_SCHEMA])
def test_shipped_schema_is_the_one_the_model_generates(name: str) -> None:
    shipped = REPO / "src" / "pytest_vllm_profile" / "schemas" / name
    assert shipped.read_text(encoding="utf-8") == schema_text(name), (
        f"{name} is stale: run `python -m pytest_vllm_profile.schemas.generate`"
    )
    assert load_schema(name) == generate(name)


def test_summary_with_a_step_kind_outside_the_literal_is_refused_naming_file_and_field(
    tmp_path: Path, cpu_summary: ProfileSummary
) -> None:
    data = to_builtins(cpu_summary)
    data["steps"][2]["kind"] = "warmup"
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelDecodeError) as info:
        ProfileSummary.load(path)
    assert str(info.value) == (
        f"{path}: not a valid ProfileSummary: Invalid enum value 'warmup' - at `$.steps[2].kind`"
    )


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        (Comparison, {"verdict": "maybe"}, "`$.verdict`"),
        (
            Comparison,
            {
                "verdict": "fail",
                "regressions": [
                    {
                        "metric": "m",
                        "kind": "vibes",
                        "baseline": 1,
                        "candidate": 2,
                        "delta": 1,
                        "delta_pct": 100,
                        "allowed": "±2%",
                    }
                ],
            },
            "`$.regressions[0].kind`",
        ),
        (TestResult, {"nodeid": "t.py::a", "outcome": "crashed"}, "`$.outcome`"),
        (TestResult, {"nodeid": "t.py::a", "outcome": "failed", "verdict": "meh"}, "`$.verdict`"),
    ],
)
def test_literal_violations_are_refused_naming_the_field(kind: type, change: dict[str, object], field: str) -> None:
    with pytest.raises(
        ModelDecodeError,
        match=r"results\.json: not a valid \w+: Invalid enum value '\w+' - at "
        + field.replace("$", r"\$").replace("[", r"\[").replace("]", r"\]"),
    ):
        from_builtins(change, kind, "results.json")


def test_baseline_with_a_bad_timing_domain_names_file_and_pointer(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save("t.py::a", "H100", "0.26.0", built_summary())
    path = store.path_for("t.py::a")
    data = json.loads(path.read_text())
    data["entries"]["H100"]["0.26.0"]["summary"]["timing_domain"] = "tpu"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as info:
        store.load("t.py::a", "H100", "0.26.0")
    assert str(info.value).startswith(
        f"{path}: baseline file does not match baseline.schema.json at JSON pointer "
        "'/entries/H100/0.26.0/summary/timing_domain': 'tpu' is not one of"
    )


def test_comparison_names_lists_follow_the_details(drifted_comparison: Comparison) -> None:
    data = json.loads(encode_json(drifted_comparison))
    assert data["new_kernels"] == [k.name for k in drifted_comparison.new_kernels] == ["attn_fwd_v2"]
    assert [k["name"] for k in data["missing_kernel_details"]] == data["missing_kernels"]
    # a hand-edited names list does not survive reading: the details are the truth
    data["new_kernels"] = ["something else"]
    assert from_builtins(data, Comparison).new_kernel_names == ["attn_fwd_v2"]
    assert copy.deepcopy(drifted_comparison) == drifted_comparison


@pytest.mark.parametrize("path", COMMITTED_BASELINES, ids=[p.name for p in COMMITTED_BASELINES])
def test_committed_baselines_are_version_2_with_the_h100_and_h200_entries(path: Path) -> None:
    document = read_baseline_file(path)
    assert json.loads(path.read_text())["schema_version"] == 2
    assert sorted(document.entries) == ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    # The H100 entries are the 0.1.0 ones, unchanged but for the v2 layout.
    (v1,) = [p for p in V1_BASELINES if p.name == path.name]
    assert to_builtins(document.entries["NVIDIA H100 80GB HBM3"]) == to_builtins(
        read_baseline_file(v1).entries["NVIDIA H100 80GB HBM3"]
    )
    h200 = document.entries["NVIDIA H200"]["0.26.0"]
    assert h200.repeats == 3 and h200.timed is not None and h200.summary.layer_count == 36


def test_v1_baseline_with_a_bad_step_time_names_the_v1_field(tmp_path: Path) -> None:
    document = json.loads(V1_BASELINES[0].read_text())
    assert document["schema_version"] == 1
    gpu, versions = next(iter(document["entries"].items()))
    version, record = next(iter(versions.items()))
    record["summary"]["steps"][0]["gpu_time_us"] = -1.0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(BaselineError) as info:
        read_baseline_file(path)
    pointer = f"/entries/{gpu}/{version}/summary/steps/0/gpu_time_us"  # the file's own (0.1.0) name
    assert f"at JSON pointer '{pointer}': -1.0 is less than the minimum of 0" in str(info.value)
