"""Trace analysis: steps ("token peaks"), decoder layers ("layer peaks"), kernel statistics,
roofline, and `summarize` which puts them into a `ProfileSummary`."""

from __future__ import annotations

from ..damage import DAMAGE_NOTE_PREFIX, damage_notes
from .kernels import KERNEL_CLASSES, KernelStats, kernel_class, short_kernel_name
from .layers import LayerDetection, LayerDetector
from .roofline import decode_roofline, estimate_weight_bytes_from_config, peak_bandwidth_gbps
from .steps import DetectedStep, StepDetection, StepDetector
from .summarize import load_trace_set, summarize, summarize_path, summarize_trace

__all__ = [
    "DAMAGE_NOTE_PREFIX",
    "KERNEL_CLASSES",
    "DetectedStep",
    "KernelStats",
    "LayerDetection",
    "LayerDetector",
    "StepDetection",
    "StepDetector",
    "damage_notes",
    "decode_roofline",
    "estimate_weight_bytes_from_config",
    "kernel_class",
    "load_trace_set",
    "peak_bandwidth_gbps",
    "short_kernel_name",
    "summarize",
    "summarize_path",
    "summarize_trace",
]
