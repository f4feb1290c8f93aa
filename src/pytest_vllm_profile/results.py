"""The machine-readable results file of a `pytest --vllm-profile` run.

The plugin writes one `RunResults` (JSON) per session; reports (HTML, Markdown job summary,
history) are rendered from it, so `vllm-profile report RESULTS.json` works offline too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from .codec import decode_json, encode_json
from .comparison import Comparison
from .configuration import RunConfiguration
from .latency import TimedPassResult
from .schema_v1 import upgrade_results
from .summary import ProfileSummary

# 2: the summaries inside are v2 and the step-time metric is step.<kind>.op_time_us (schema_v1)
RESULTS_SCHEMA_VERSION: Final = 2

Outcome = Literal["passed", "failed", "skipped", "error"]
# The baseline step's verdict of a test: the comparison's, or what was done instead of one.
TestVerdict = Literal["pass", "fail", "updated", "no-baseline"]


class RequestResult(msgspec.Struct, forbid_unknown_fields=True):
    """One completion request of the profiled workload."""

    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class TestResult(msgspec.Struct, forbid_unknown_fields=True):
    __test__ = False  # a result type, not a pytest test class

    nodeid: str
    outcome: Outcome
    verdict: TestVerdict | None = None  # None when there was no baseline step (skipped, error)
    message: str = ""  # why it failed / what was updated
    workload: dict[str, Any] = msgspec.field(default_factory=dict)  # Workload.to_dict()
    summary: ProfileSummary | None = None  # median of repeats
    baseline_summary: ProfileSummary | None = None
    comparison: Comparison | None = None
    requests: list[RequestResult] = msgspec.field(default_factory=list)
    trace_paths: list[str] = msgspec.field(default_factory=list)
    baseline_path: str | None = None
    baseline_changed: bool = False
    duration_s: float | None = None
    server_boot_s: float | None = None  # set on the test that booted its server: start to healthy
    configuration: RunConfiguration | None = None  # what produced the profile (issue 15)
    # The timed (unprofiled) pass, every sample kept (issue 12); UNSET (left out of the file, so
    # results of 0.1.0 re-encode without additions): no timed pass ran.
    timed_pass: TimedPassResult | UnsetType = UNSET
    baseline_timed_pass: TimedPassResult | UnsetType = UNSET  # the baseline's, when it has one


class RunResults(msgspec.Struct, forbid_unknown_fields=True):
    schema_version: int = RESULTS_SCHEMA_VERSION
    created: str = ""  # ISO 8601 UTC
    commit: str | None = None
    gpu: str | None = None
    vllm_version: str | None = None
    launcher: str | None = None
    profiler: str | None = None
    tests: list[TestResult] = msgspec.field(default_factory=list)

    @classmethod
    def upgrade_builtins(cls, data: Any) -> Any:
        """The JSON of a results file of 0.1.0 (schema_version 1) in this layout (`codec.from_builtins`)."""
        return upgrade_results(data)

    def save(self, path: str | Path) -> None:
        """Write atomically: a temp file of its own in the same folder, then `os.replace`, so two
        writers never share a temp file (a fixed name failed 50 of 360 saves with two writers)
        and a reader sees the old file or the new one, never a torn one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(encode_json(self) + "\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | Path) -> RunResults:
        """Read a results file; `codec.ModelDecodeError` naming the file and field when it is not one."""
        return decode_json(Path(path).read_bytes(), cls, str(path))
