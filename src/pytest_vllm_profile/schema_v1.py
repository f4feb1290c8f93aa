"""Reading what pytest-vllm-profile 0.1.0 wrote (schema_version 1): its upgrade to the current layout.

Version 2 renamed the step time fields, because they also hold CPU time (a CPU-only trace is
timed by its `cpu_op` events, `timing_domain` "cpu"): a step's `gpu_time_us` is `op_time_us`,
"the summed op (GPU kernel, or CPU op) time of the step in the summary's timing domain";
`{median,mean,min,max}_gpu_time_us` of the step-kind stats, the spread's `step_gpu_time_us`
and the comparison metric `step.<kind>.gpu_time_us` follow. Nothing else changed: fields that
really are GPU-only (`gpu_busy_us`, `gpu_idle_us`, `median_gpu_busy_us`, ...) kept their names.

The upgrade works on parsed JSON (dicts and lists), before the typed decode, so the model has
one layout: `codec.from_builtins` calls a model type's `upgrade_builtins`. A document that is
not a version-1 one is returned as it is (the typed decode then names what is wrong with it).
Files are never rewritten on read: a v1 baseline stays v1 on disk until an entry is recorded.
"""

from __future__ import annotations

from typing import Any, Final

V1: Final = 1
V2: Final = 2

# v1 field -> v2 field, wherever it occurs in a StepSummary, StepKindStats or RepeatSpread.
STEP_FIELD_RENAMES: Final = {"gpu_time_us": "op_time_us"}
STEP_KIND_FIELD_RENAMES: Final = {
    f"{stat}_gpu_time_us": f"{stat}_op_time_us" for stat in ("median", "mean", "min", "max")
}
SPREAD_FIELD_RENAMES: Final = {"step_gpu_time_us": "step_op_time_us"}
# Every renamed key, v2 -> v1: names the 0.1.0 field in an error about a v1 file.
V2_TO_V1_KEYS: Final = {
    new: old
    for renames in (STEP_FIELD_RENAMES, STEP_KIND_FIELD_RENAMES, SPREAD_FIELD_RENAMES)
    for old, new in renames.items()
}


def _rename(obj: Any, renames: dict[str, str]) -> Any:
    if not isinstance(obj, dict):
        return obj
    return {renames.get(key, key): value for key, value in obj.items()}


def _is_v1(data: Any) -> bool:
    return isinstance(data, dict) and data.get("schema_version") == V1


def v1_metric(metric: Any) -> Any:
    """A comparison metric name of 0.1.0 in its v2 form (`step.decode.gpu_time_us` -> `step.decode.op_time_us`)."""
    if isinstance(metric, str) and metric.startswith("step.") and metric.endswith(".gpu_time_us"):
        return metric.removesuffix(".gpu_time_us") + ".op_time_us"
    return metric


def _summary_body(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if isinstance(out.get("steps"), list):
        out["steps"] = [_rename(step, STEP_FIELD_RENAMES) for step in out["steps"]]
    if isinstance(out.get("step_kinds"), dict):
        out["step_kinds"] = {kind: _rename(stats, STEP_KIND_FIELD_RENAMES) for kind, stats in out["step_kinds"].items()}
    if isinstance(out.get("ranks"), list):
        out["ranks"] = [upgrade_summary(rank) for rank in out["ranks"]]
    out["schema_version"] = V2
    return out


def upgrade_summary(data: Any) -> Any:
    """A ProfileSummary's JSON in the v2 layout (unchanged unless it is a version-1 summary)."""
    return _summary_body(data) if _is_v1(data) else data


def upgrade_spread(data: Any) -> Any:
    """A RepeatSpread's JSON with the v2 field names (a spread has no version of its own: it is
    upgraded with the baseline entry or results test it belongs to)."""
    return _rename(data, SPREAD_FIELD_RENAMES)


def upgrade_comparison(data: Any) -> Any:
    """A Comparison's JSON with the v2 metric names (the comparison of a v1 results file)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for key in ("regressions", "improvements"):
        if isinstance(out.get(key), list):
            out[key] = [
                {**f, "metric": v1_metric(f.get("metric"))} if isinstance(f, dict) and "metric" in f else f
                for f in out[key]
            ]
    if isinstance(out.get("too_few_samples"), list):
        out["too_few_samples"] = [v1_metric(m) for m in out["too_few_samples"]]
    return out


def upgrade_baseline(data: Any) -> Any:
    """A baseline file's JSON in the v2 layout: every entry's summary and spread (unchanged unless v1)."""
    if not _is_v1(data) or not isinstance(data.get("entries"), dict):
        return data
    entries: dict[Any, Any] = {}
    for gpu, versions in data["entries"].items():
        if not isinstance(versions, dict):
            entries[gpu] = versions
            continue
        entries[gpu] = {}
        for version, record in versions.items():
            if isinstance(record, dict):
                record = dict(record)
                if _is_v1(record.get("summary")):
                    record["summary"] = _summary_body(record["summary"])
                if "spread" in record:
                    record["spread"] = upgrade_spread(record["spread"])
            entries[gpu][version] = record
    return {**data, "schema_version": V2, "entries": entries}


def upgrade_results(data: Any) -> Any:
    """A results file's JSON in the v2 layout: each test's summaries and comparison (unchanged unless v1)."""
    if not _is_v1(data) or not isinstance(data.get("tests"), list):
        return data
    tests = []
    for test in data["tests"]:
        if isinstance(test, dict):
            test = dict(test)
            for key in ("summary", "baseline_summary"):
                if key in test:
                    test[key] = upgrade_summary(test[key])
            if "comparison" in test:
                test["comparison"] = upgrade_comparison(test["comparison"])
        tests.append(test)
    return {**data, "schema_version": V2, "tests": tests}


def v1_pointer(pointer: str) -> str:
    """A JSON pointer into the upgraded form of a v1 document, with the 0.1.0 field names."""
    return "/".join(V2_TO_V1_KEYS.get(part, part) for part in pointer.split("/"))
