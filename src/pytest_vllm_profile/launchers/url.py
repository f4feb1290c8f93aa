"""`UrlLauncher`: attach to a vLLM server someone else started.

The server must already run with the torch profiler on, writing into a folder this machine
can read (the user says which: `ServerSpec.trace_dir`). `stop()` leaves the server alone.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from ..errors import LauncherError
from .base import Launcher, RunningServer, ServerSpec
from .readiness import ReadinessTimeout, wait_until_ready


class UrlLauncher(Launcher):
    """A running server at `url`; `spec.trace_dir` is where its profiler writes traces.

    spec.model / spec.served_model_name name the model for requests; when both are empty the
    first model the server lists under /v1/models is used.
    """

    def __init__(self, spec: ServerSpec, url: str, health_timeout_s: float | None = None) -> None:
        super().__init__(spec)
        if not url.startswith(("http://", "https://")):
            raise LauncherError(f"server URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        # Attaching should fail fast: the server is either up or not; a booting one gets this long.
        self.health_timeout_s = health_timeout_s if health_timeout_s is not None else min(spec.health_timeout_s, 30.0)

    def start(self) -> RunningServer:
        if self.spec.trace_dir is None:
            raise LauncherError(
                f"attaching to {self.url} needs the folder where that server writes traces "
                "(ServerSpec.trace_dir: the torch_profiler_dir it was started with, as seen from this machine)"
            )
        trace_dir = Path(self.spec.trace_dir).absolute()
        if not trace_dir.is_dir():
            raise LauncherError(
                f"trace folder {trace_dir} of the server at {self.url} does not exist here; "
                "give the folder the server's --profiler-config torch_profiler_dir points to"
            )
        try:
            models = wait_until_ready(self.url, self.health_timeout_s)
        except ReadinessTimeout as exc:  # a LauncherError like every launcher's (named so in reports)
            raise LauncherError(str(exc)) from None
        model_name = self.spec.served_model_name or self.spec.model or (models[0] if models else "")
        if not model_name:
            raise LauncherError(f"server at {self.url} lists no model under /v1/models")
        if models and model_name not in models:
            raise LauncherError(f"server at {self.url} serves {models}, not {model_name!r}")
        self.server = RunningServer(
            base_url=self.url,
            trace_dir=trace_dir,
            log_path=None,
            profiler=self.spec.profiler,
            model_name=model_name,
            vllm_version=self._version(),
        )
        return self.server

    def _version(self) -> str | None:
        try:
            answer = httpx.get(self.url + "/version", timeout=5.0)
            return answer.json().get("version") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def stop(self) -> None:
        """Nothing to do: the server belongs to whoever started it."""
