"""Trace readers: profiler output (torch/Kineto JSON, Nsight Systems SQLite) -> `events.Trace`."""

from __future__ import annotations

from .discovery import read_trace_set
from .torch_reader import read_torch_trace

__all__ = ["read_torch_trace", "read_trace_set"]
