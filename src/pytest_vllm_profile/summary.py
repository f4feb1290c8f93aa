"""`ProfileSummary`: the JSON-serializable result of analysing one profile.

This is the contract between analysis, baseline store, comparison and reports. Its JSON
form is described by `schemas/summary.schema.json` (keep both in step; bump
`SUMMARY_SCHEMA_VERSION` on any incompatible change).

Times are microseconds. `timing_domain` says whose clock they are: "gpu" (sums of GPU
kernel durations) or "cpu" (CPU-only traces, e.g. vLLM's CPU backend: `cpu_op` durations).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SUMMARY_SCHEMA_VERSION = 1

STEP_KINDS: tuple[str, ...] = ("prefill", "decode", "mixed")


@dataclass
class DeviceInfo:
    name: str | None = None
    sm_count: int | None = None
    memory_bytes: int | None = None
    compute_capability: str | None = None
    peak_memory_bandwidth_gbps: float | None = None  # from a table of known GPUs, None if unknown


@dataclass
class RuntimeInfo:
    profiler: str = "torch"  # "torch" or "nsys"
    cuda_driver_version: int | None = None
    cuda_runtime_version: int | None = None
    cupti_version: int | None = None
    vllm_version: str | None = None


@dataclass
class LayerTiming:
    """One decoder layer inside one step."""

    index: int
    time_us: float  # kernel (or cpu_op) time attributed to this layer in this step
    kernel_count: int


@dataclass
class StepSummary:
    """One engine step = one forward pass = one "token peak"."""

    index: int
    kind: str  # one of STEP_KINDS
    name: str  # vLLM's annotation text, or "gpu_burst_<i>" when found from GPU activity
    start_us: float
    wall_time_us: float  # span of the step on the timeline
    gpu_time_us: float  # sum of kernel durations inside the step (cpu_op time when timing_domain == "cpu")
    kernel_count: int
    prefill_requests: int | None = None
    prefill_tokens: int | None = None
    decode_requests: int | None = None
    decode_tokens: int | None = None
    layers: list[LayerTiming] = field(default_factory=list)


@dataclass
class KernelKindStats:
    count: int
    total_us: float
    mean_us: float


@dataclass
class KernelSummary:
    """Statistics of every launch of one kernel name over the profile."""

    name: str
    short_name: str
    kernel_class: str  # "attention", "gemm", "norm", "communication", "elementwise", "memory", "other"
    count: int
    total_us: float
    mean_us: float
    median_us: float
    p90_us: float
    min_us: float
    max_us: float
    share: float  # fraction of all kernel time, 0..1
    per_step_kind: dict[str, KernelKindStats] = field(default_factory=dict)


@dataclass
class StepKindStats:
    """Aggregates over the steps of one kind."""

    count: int
    median_gpu_time_us: float
    mean_gpu_time_us: float
    min_gpu_time_us: float
    max_gpu_time_us: float
    median_layer_time_us: list[float] = field(default_factory=list)  # per layer index
    kernels_per_step: dict[str, float] = field(default_factory=dict)  # kernel name -> launches per step (median)


@dataclass
class Roofline:
    """Decode-step memory-bandwidth roofline: weight bytes / step time / peak HBM bandwidth."""

    weight_bytes: int
    peak_bandwidth_gbps: float
    decode_step_time_us: float
    fraction: float  # 0..1 of the bandwidth roofline achieved


@dataclass
class ProfileSummary:
    schema_version: int
    source: list[str]
    timing_domain: str  # "gpu" or "cpu"
    step_method: str  # "annotation" or "gpu_activity"
    layer_method: str | None  # "module", "kernel_pattern" or None when no layers were found
    token_steps: int
    layer_count: int  # layers per step (0 when none were found)
    total_kernel_us: float  # sum of all kernel event durations (cpu_op self time when timing_domain == "cpu")
    device: DeviceInfo = field(default_factory=DeviceInfo)
    runtime: RuntimeInfo = field(default_factory=RuntimeInfo)
    steps: list[StepSummary] = field(default_factory=list)
    kernels: list[KernelSummary] = field(default_factory=list)
    step_kinds: dict[str, StepKindStats] = field(default_factory=dict)
    roofline: Roofline | None = None
    rank: int = 0
    world_size: int = 1
    ranks: list["ProfileSummary"] = field(default_factory=list)  # per-rank summaries when world_size > 1
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProfileSummary":
        return _build(cls, data)

    @classmethod
    def load(cls, path: str | Path) -> "ProfileSummary":
        return cls.from_dict(json.loads(Path(path).read_text()))

    # One-line helpers for the seed's checks.
    def steps_of(self, kind: str) -> list[StepSummary]:
        return [s for s in self.steps if s.kind == kind]

    def kernel(self, name_or_short: str) -> KernelSummary | None:
        for k in self.kernels:
            if name_or_short in (k.name, k.short_name):
                return k
        return None




# Which fields of which dataclass hold nested dataclasses (single, list of, dict of).
_NESTED: dict[tuple[type, str], type] = {
    (ProfileSummary, "device"): DeviceInfo,
    (ProfileSummary, "runtime"): RuntimeInfo,
    (ProfileSummary, "roofline"): Roofline,
}
_NESTED_LISTS: dict[tuple[type, str], type] = {
    (ProfileSummary, "steps"): StepSummary,
    (ProfileSummary, "kernels"): KernelSummary,
    (ProfileSummary, "ranks"): ProfileSummary,
    (StepSummary, "layers"): LayerTiming,
}
_NESTED_DICTS: dict[tuple[type, str], type] = {
    (ProfileSummary, "step_kinds"): StepKindStats,
    (KernelSummary, "per_step_kind"): KernelKindStats,
}


def _build(cls: type, data: Any) -> Any:
    """Rebuild nested dataclasses from `asdict` output (dicts/lists of dicts)."""
    if data is None:
        return None
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            continue  # tolerate fields added by newer minor versions
        if (cls, key) in _NESTED:
            value = _build(_NESTED[(cls, key)], value)
        elif (cls, key) in _NESTED_LISTS:
            value = [_build(_NESTED_LISTS[(cls, key)], v) for v in value]
        elif (cls, key) in _NESTED_DICTS:
            value = {k: _build(_NESTED_DICTS[(cls, key)], v) for k, v in value.items()}
        kwargs[key] = value
    return cls(**kwargs)
