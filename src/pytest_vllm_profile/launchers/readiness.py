"""The one readiness wait of every launcher: poll a vLLM server until it serves requests.

A server is ready when /health and /v1/models both answer 200 and /v1/models lists the
models as JSON: the OpenAI routes are up, not only the health probe, so a request can be sent
(vLLM answers /health a moment before its routes are mounted). Each launcher adds its own
check of whether the server is still starting (`still_starting`, called before every poll):
the process launcher's child still alive, the container still running. It raises at once
when the server is gone, instead of letting the wait run into the timeout.

The timeout is the caller's (the launcher's `ServerSpec.health_timeout_s`); the polling is
the same for everyone: first after `FIRST_POLL_S`, then 1.5x longer each time up to
`MAX_POLL_S`, so a server that is ready (or dead) is seen within a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from ..errors import LauncherError

FIRST_POLL_S = 0.25
MAX_POLL_S = 1.0
# One HTTP request of a poll; a booting server that accepts the connection but does not answer
# for this long counts as "not ready yet", not as an error.
REQUEST_TIMEOUT_S = 5.0


class NotReady(Exception):
    """A probe's answer while the server is not ready yet; `problem` says what it saw."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class ReadinessTimeout(LauncherError):
    """The server did not become ready within the timeout; names the URL, the seconds and the
    last problem seen."""

    def __init__(self, base_url: str, timeout_s: float, last_problem: str) -> None:
        super().__init__(f"vLLM server at {base_url} is not reachable/healthy after {timeout_s:.0f} s ({last_problem})")
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.last_problem = last_problem


def served_models(client: httpx.Client, base_url: str) -> list[str]:
    """The model ids the server at `base_url` serves, once /health and /v1/models answer;
    raises NotReady saying what it saw until then."""
    try:
        health = client.get(base_url + "/health")
        if health.status_code != 200:
            raise NotReady(f"/health answered HTTP {health.status_code}: {health.text[:300]}")
        listing = client.get(base_url + "/v1/models")
        if listing.status_code != 200:
            raise NotReady(f"/v1/models answered HTTP {listing.status_code}: {listing.text[:300]}")
        data = listing.json().get("data", [])
        return [str(m.get("id", "")) for m in data]
    except httpx.HTTPError as exc:
        raise NotReady(f"{type(exc).__name__}: {exc}") from None
    except (ValueError, AttributeError):  # not JSON, or JSON of another shape
        raise NotReady("/v1/models did not answer JSON (is this a vLLM server?)") from None


def _starting() -> None:
    """Default `still_starting`: nothing to watch (a server someone else runs)."""


def wait_until_ready(
    base_url: str,
    timeout_s: float,
    *,
    still_starting: Callable[[], None] = _starting,
    probe: Callable[[httpx.Client, str], list[str]] = served_models,
) -> list[str]:
    """Poll `base_url` until `probe` answers; return its answer (the served model ids).

    `still_starting()` is called before each poll and raises (LauncherError with the
    launcher's own details) when the server has died. Raises ReadinessTimeout after
    `timeout_s` seconds without an answer.
    """
    deadline = time.monotonic() + timeout_s
    delay = FIRST_POLL_S
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        while True:
            still_starting()
            try:
                return probe(client, base_url)
            except NotReady as exc:
                last_problem = exc.problem
            if time.monotonic() >= deadline:
                raise ReadinessTimeout(base_url, timeout_s, last_problem)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, MAX_POLL_S)
