"""The machine-readable results file of a `pytest --vllm-profile` run.

The plugin writes one `RunResults` (JSON) per session; reports (HTML, Markdown job summary,
history) are rendered from it, so `vllm-profile report RESULTS.json` works offline too.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_SCHEMA_VERSION = 1


@dataclass
class RequestResult:
    """One completion request of the profiled workload."""

    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class TestResult:
    nodeid: str
    outcome: str  # "passed", "failed", "skipped", "error"
    verdict: str | None = None  # comparison verdict: "pass", "fail", "updated", "no-baseline", None
    message: str = ""  # why it failed / what was updated
    workload: dict[str, Any] = field(default_factory=dict)  # Workload.to_dict()
    summary: dict[str, Any] | None = None  # ProfileSummary.to_dict() (median of repeats)
    baseline_summary: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None  # Comparison.to_dict()
    requests: list[RequestResult] = field(default_factory=list)
    trace_paths: list[str] = field(default_factory=list)
    baseline_path: str | None = None
    baseline_changed: bool = False
    duration_s: float | None = None
    server_boot_s: float | None = None  # set on the test that booted its server: start to healthy

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TestResult":
        """Inverse of `asdict` (a results file's test, or a report sent from an xdist worker)."""
        data = dict(data)
        data["requests"] = [RequestResult(**r) for r in data.get("requests", [])]
        return cls(**data)


@dataclass
class RunResults:
    schema_version: int = RESULTS_SCHEMA_VERSION
    created: str = ""  # ISO 8601 UTC
    commit: str | None = None
    gpu: str | None = None
    vllm_version: str | None = None
    launcher: str | None = None
    profiler: str | None = None
    tests: list[TestResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResults":
        tests = [TestResult.from_dict(t) for t in data.get("tests", [])]
        return cls(**{k: v for k, v in data.items() if k != "tests"}, tests=tests)

    @classmethod
    def load(cls, path: str | Path) -> "RunResults":
        return cls.from_dict(json.loads(Path(path).read_text()))
