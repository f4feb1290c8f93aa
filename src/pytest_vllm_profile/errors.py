"""Every error the library raises on purpose.

Each one carries a message a person can act on (which file, what is wrong, what to do);
callers never have to read a traceback from deep inside pandas or httpx.
"""

from __future__ import annotations


class VllmProfileError(Exception):
    """Base class: catch this to handle any expected failure of the library."""


class TraceError(VllmProfileError):
    """A trace file or folder cannot be read or does not hold what an analysis needs."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class AnalysisError(VllmProfileError):
    """The trace was read but the requested analysis cannot be done on it."""


class BaselineError(VllmProfileError):
    """A baseline file is missing, invalid or cannot be written."""


class WorkloadError(VllmProfileError):
    """A `vllm_workload` marker declares something invalid."""


class LauncherError(VllmProfileError):
    """A vLLM server could not be started, became unhealthy or could not be stopped."""


class CaptureError(VllmProfileError):
    """Driving the profiler over HTTP failed or the trace files never appeared."""


class ServerErrorAnswer(CaptureError):
    """The server answered a request with HTTP 5xx: it may be on its way down
    (`capture.explain_server_error` waits a moment to tell)."""
