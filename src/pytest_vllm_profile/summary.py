"""`ProfileSummary`: the typed result of analysing one profile.

This is the contract between analysis, baseline store, comparison and reports. The model is
these `msgspec.Struct` types; their JSON form (`codec.encode_json` / `codec.decode_json`) and
the shipped `schemas/summary.schema.json` are generated from them (`schemas.generate`; bump
`SUMMARY_SCHEMA_VERSION` on any incompatible change and migrate the old form on read:
`schema_v1` reads the files of 0.1.0).

Times are microseconds. `timing_domain` says whose clock they are: "gpu" (sums of GPU
kernel durations) or "cpu" (CPU-only traces, e.g. vLLM's CPU backend: `cpu_op` durations).
"Op time" (`op_time_us`) is the time of that domain: kernel time on a GPU, CPU op time on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from .codec import decode_json, encode_json
from .schema_v1 import upgrade_summary

SUMMARY_SCHEMA_VERSION: Final = 2  # 2: gpu_time_us -> op_time_us (schema_v1)

StepKind = Literal["prefill", "decode", "mixed"]
STEP_KINDS: tuple[StepKind, ...] = get_args(StepKind)
TimingDomain = Literal["gpu", "cpu"]
StepMethod = Literal["annotation", "gpu_activity"]  # vLLM's step annotations, or bursts of GPU activity
LayerMethod = Literal["module", "kernel_pattern"]  # module annotations, or a repeating kernel pattern
Profiler = Literal["torch", "nsys"]

# Bounds checked when a file is read (and written into the schema), not when analysis builds one.
Count = Annotated[int, msgspec.Meta(ge=0)]
Micros = Annotated[float, msgspec.Meta(ge=0)]


class DeviceInfo(msgspec.Struct):
    name: str | None = None
    sm_count: int | None = None
    memory_bytes: int | None = None
    compute_capability: str | None = None
    peak_memory_bandwidth_gbps: float | None = None  # from a table of known GPUs, None if unknown


class RuntimeInfo(msgspec.Struct):
    profiler: Profiler = "torch"
    cuda_driver_version: int | None = None
    cuda_runtime_version: int | None = None
    cupti_version: int | None = None
    vllm_version: str | None = None
    # nsys runs (issue 14): how the profile was captured ("cuda-range" or "session") and by which nsys,
    # e.g. "session, nsys 2022.4.2.1"; the nsys version that exported the report (EXPORT_PRODUCT_VERSION).
    # UNSET (left out of the JSON) for torch profiles, so files without them read and write unchanged.
    nsys_capture: str | msgspec.UnsetType = msgspec.UNSET
    nsys_version: str | msgspec.UnsetType = msgspec.UNSET


class LayerTiming(msgspec.Struct):
    """One decoder layer inside one step."""

    index: Count
    time_us: Micros  # kernel (or cpu_op) time attributed to this layer in this step
    kernel_count: Count


class StepSummary(msgspec.Struct):
    """One engine step = one forward pass = one "token peak"."""

    index: Count
    kind: StepKind
    name: str  # vLLM's annotation text, or "gpu_burst_<i>" when found from GPU activity
    start_us: float
    wall_time_us: Micros  # span of the step on the timeline
    # summed op time of the step in the summary's timing domain: kernel durations inside the step,
    # or top-level cpu_op durations when timing_domain == "cpu" (0.1.0 called it gpu_time_us)
    op_time_us: Micros
    kernel_count: Count
    prefill_requests: int | None = None
    prefill_tokens: int | None = None
    decode_requests: int | None = None
    decode_tokens: int | None = None
    layers: list[LayerTiming] = msgspec.field(default_factory=list)
    # ---- CPU overhead of the step (issue 12, analysis.step_overhead). UNSET (left out of the
    # JSON, so 0.1.0 files re-encode without them): not measured; None: not applicable (GPU
    # busy/idle and launches on CPU-only traces; period of the last step).
    period_us: float | None | UnsetType = UNSET  # to the next step's start
    gpu_busy_us: float | None | UnsetType = UNSET  # union of the step's kernel intervals
    gpu_idle_us: float | None | UnsetType = UNSET  # wall_time_us - gpu_busy_us
    kernel_launches: int | None | UnsetType = UNSET  # host kernel launch calls in the step
    graph_launches: int | None | UnsetType = UNSET  # CUDA graph replays in the step


class KernelKindStats(msgspec.Struct):
    count: Count
    total_us: Micros
    mean_us: Micros


class KernelSummary(msgspec.Struct):
    """Statistics of every launch of one kernel name over the profile."""

    name: str
    short_name: str
    kernel_class: str  # one of analysis.kernels.KERNEL_CLASSES ("attention", "gemm", ..., "other")
    count: Count
    total_us: Micros
    mean_us: Micros
    median_us: Micros
    p90_us: Micros
    min_us: Micros
    max_us: Micros
    share: Annotated[float, msgspec.Meta(ge=0, le=1.000001)]  # fraction of all kernel time (float sums: 1 + eps)
    per_step_kind: dict[StepKind, KernelKindStats] = msgspec.field(default_factory=dict)


class StepKindStats(msgspec.Struct):
    """Aggregates over the steps of one kind (op time: `StepSummary.op_time_us`)."""

    count: Count
    median_op_time_us: Micros
    mean_op_time_us: Micros
    min_op_time_us: Micros
    max_op_time_us: Micros
    median_layer_time_us: list[Micros] = msgspec.field(default_factory=list)  # per layer index
    # kernel name -> launches per step (median)
    kernels_per_step: dict[str, Annotated[float, msgspec.Meta(ge=0)]] = msgspec.field(default_factory=dict)


class StepKindOverhead(msgspec.Struct, kw_only=True, frozen=True):
    """CPU overhead of the steps of one kind: medians over those steps (None where not applicable).

    Wall time is the step's span, period the start-to-start time (it also holds the work between
    steps: scheduler, output processing); GPU idle = wall - GPU busy (union of kernel intervals).
    """

    kind: str
    steps: int
    median_wall_us: float
    median_period_us: float | None
    median_gpu_busy_us: float | None
    median_gpu_idle_us: float | None
    gpu_idle_fraction: float | None  # median idle / median wall
    median_kernel_launches: float | None
    median_graph_launches: float | None


class Roofline(msgspec.Struct):
    """Decode-step memory-bandwidth roofline: weight bytes / step time / peak HBM bandwidth."""

    weight_bytes: Count
    peak_bandwidth_gbps: Annotated[float, msgspec.Meta(gt=0)]
    decode_step_time_us: Micros
    fraction: Annotated[float, msgspec.Meta(ge=0)]  # 0..1 of the bandwidth roofline achieved


class ProfileSummary(msgspec.Struct):
    schema_version: Literal[2]
    source: list[str]
    timing_domain: TimingDomain
    step_method: StepMethod
    layer_method: LayerMethod | None  # None when no layers were found
    token_steps: Count
    layer_count: Count  # layers per step (0 when none were found)
    total_kernel_us: Micros  # sum of all kernel event durations (cpu_op self time when timing_domain == "cpu")
    device: DeviceInfo = msgspec.field(default_factory=DeviceInfo)
    runtime: RuntimeInfo = msgspec.field(default_factory=RuntimeInfo)
    steps: list[StepSummary] = msgspec.field(default_factory=list)
    kernels: list[KernelSummary] = msgspec.field(default_factory=list)
    step_kinds: dict[StepKind, StepKindStats] = msgspec.field(default_factory=dict)
    roofline: Roofline | None = None
    rank: Count = 0
    world_size: Annotated[int, msgspec.Meta(ge=1)] = 1
    ranks: list[ProfileSummary] = msgspec.field(default_factory=list)  # per-rank summaries when world_size > 1
    notes: list[str] = msgspec.field(default_factory=list)
    # step kind -> CPU overhead of its steps (issue 12); UNSET (not in the JSON) before 0.2:
    # read it through `overhead_by_kind()`.
    step_overhead: dict[str, StepKindOverhead] | UnsetType = UNSET

    @classmethod
    def upgrade_builtins(cls, data: Any) -> Any:
        """The JSON of a summary written by 0.1.0 (schema_version 1) in this layout (`codec.from_builtins`)."""
        return upgrade_summary(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(encode_json(self) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ProfileSummary:
        """Read a summary JSON file; `codec.ModelDecodeError` naming the file and field when it is not one."""
        return decode_json(Path(path).read_bytes(), cls, str(path))

    def overhead_by_kind(self) -> dict[str, StepKindOverhead]:
        """step kind -> CPU overhead of its steps; {} when the summary has none (written before 0.2)."""
        return {} if isinstance(self.step_overhead, UnsetType) else self.step_overhead

    # One-line helpers for the seed's checks.
    def steps_of(self, kind: str) -> list[StepSummary]:
        return [s for s in self.steps if s.kind == kind]

    def kernel(self, name_or_short: str) -> KernelSummary | None:
        for k in self.kernels:
            if name_or_short in (k.name, k.short_name):
                return k
        return None


def set_or_none(value: object) -> object:
    """`value`, or None when it is msgspec.UNSET (a field a file written before it existed lacks)."""
    return None if isinstance(value, UnsetType) else value
