"""pytest hooks and fixtures: a thin layer over the library.

What a run does
---------------
* `@pytest.mark.vllm_workload(model=..., max_tokens=..., ...)` declares a workload. Its
  arguments are validated while collecting (`Workload.from_marker_kwargs`); a typo or a
  missing `model=` is a collection error naming the test and the argument (exit code 2),
  with or without `--vllm-profile`. Markers on the module/class and the function merge,
  the closest one winning per argument.
* Without `--vllm-profile`, marked tests are SKIPPED with the reason
  "vLLM profiling tests need --vllm-profile (and a GPU/vLLM server)"; never passed silently.
* `vllm_server_pool` (session): one server per distinct server identity (see `pool.py`).
  `vllm_profile` (function): captures the workload `repeats` times on its pooled server,
  summarizes and combines the repeats, and returns a `workload_profile.VllmProfile`. A marked test
  that does not request `vllm_profile` gets it anyway: it is then a pure baseline check.

Baseline flow
-------------
After the test BODY PASSED (its own structural asserts), a `pytest_runtest_call` wrapper
checks the profile against the stored baseline, inside the call phase, so a regression is a
test FAILURE whose message is `Comparison.explain()` (not an error, no plugin traceback):

* no baseline for (test, GPU, vLLM version): failure "no baseline for ... run with
  --update-baselines" (never a silent pass);
* the test already called `profile.assert_matches_baseline()`: that result stands;
* `--update-baselines`: the baseline is written instead (only for passed bodies: a failed
  body raises out of the call before the wrapper gets to it), changed files are listed in
  the terminal summary;
* an invalid baseline file: failure naming the file and what is wrong.

The structural check `expected_layers=` of the marker runs first, like a test assert.

Options with a path value: write them as `--vllm-python=PATH` (with "="). pytest guesses its
rootdir from bare path arguments before plugin options are known, so `--vllm-python PATH`
can move the rootdir (and with it node ids and the default baseline folder).

Reporting
---------
Each marked test's result travels as a JSON-able attribute of its teardown report, so under
pytest-xdist the controller receives the workers' results with the reports themselves; the
controller (or the single process) builds the `RunResults` file, the terminal section
"vllm-profile", and (lazily imported) the HTML / GitHub job-summary reports.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from .codec import from_builtins, to_builtins
from .errors import VllmProfileError, WorkloadError
from .launchers.base import Launcher, ServerSpec
from .pool import PoolSettings, ServerPool, nvidia_smi_gpu_count, worker_index
from .results import Outcome, RunResults, TestResult
from .workload import Workload

MARKER = "vllm_workload"
SKIP_REASON = "vLLM profiling tests need --vllm-profile (and a GPU/vLLM server)"
LAUNCHERS = ("process", "docker", "url")
PROFILERS = ("torch", "nsys")
RESULT_ATTR = "vllm_profile_result"  # attribute of the teardown report carrying a TestResult dict

WORKLOAD_KEY = pytest.StashKey[Workload]()
PROFILE_KEY = pytest.StashKey[Any]()  # workload_profile.VllmProfile
PHASES_KEY = pytest.StashKey[dict]()
BOOT_KEY = pytest.StashKey[Any]()  # seconds the server this test booted took to get healthy
STATE_KEY = pytest.StashKey["PluginState"]()


# ---- options ------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vllm-profile", "vLLM profiling regression tests (pytest-vllm-profile)")

    def opt(name: str, ini: str | None, help: str, ini_type: str = "string", ini_default: Any = None,
            **kw: Any) -> None:
        text = (help + (f" [ini: {ini}]" if ini else "")).replace("%", "%%")  # argparse formats help with %
        group.addoption(name, dest=name.lstrip("-").replace("-", "_"), help=text, **kw)
        if ini:
            parser.addini(ini, help, type=ini_type, default=ini_default)

    opt("--vllm-profile", None, "run the vllm_workload tests (profile vLLM); without it they are skipped",
        action="store_true", default=False)
    opt("--update-baselines", None, "write the baselines of tests whose body passed instead of comparing",
        action="store_true", default=False)
    opt("--baseline-dir", "vllm_baseline_dir", "folder of the baseline files (default: baselines/ under rootdir)",
        metavar="DIR", default=None)
    opt("--vllm-launcher", "vllm_launcher", "how to get a vLLM server: process (local vllm serve), docker, "
        "url (attach to a running server); default process", choices=LAUNCHERS, default=None)
    opt("--vllm-url", "vllm_url", "URL of a running vLLM server (url launcher)", metavar="URL", default=None)
    opt("--vllm-trace-dir", "vllm_trace_dir", "folder the attached server writes its traces to, as seen from "
        "here (url launcher)", metavar="DIR", default=None)
    opt("--vllm-python", "vllm_python", "python interpreter that has vLLM (process launcher), e.g. "
        ".venv-vllm-cpu/bin/python", metavar="PYTHON", default=None)
    opt("--vllm-image", "vllm_image", "container image (docker launcher), default vllm/vllm-openai:latest",
        metavar="IMAGE", default=None)
    opt("--vllm-allow-pull", "vllm_allow_pull", "let the docker launcher pull a missing image",
        ini_type="bool", ini_default=False, action="store_true", default=None)
    opt("--vllm-docker-host", "vllm_docker_host", "Docker/Podman API URL, e.g. unix:///run/podman/podman.sock",
        metavar="URL", default=None)
    opt("--vllm-profiler", "vllm_profiler", "profiler the server runs: torch (default) or nsys",
        choices=PROFILERS, default=None)
    opt("--vllm-repeats", "vllm_repeats", "profiles per test (median + spread), unless the marker says; default 3",
        metavar="N", default=None)
    opt("--vllm-rel-tol", "vllm_rel_tol", "relative time tolerance, e.g. 0.02 for 2%", metavar="FRACTION",
        default=None)
    opt("--vllm-abs-floor-us", "vllm_abs_floor_us", "smallest time change (µs per step) that can regress a "
        "kernel/layer", metavar="US", default=None)
    opt("--vllm-no-fail-on-drift", None, "report new/missing kernels without failing the test",
        action="store_true", default=False)
    parser.addini("vllm_fail_on_drift", "new/missing kernels fail the test (default true)", type="bool", default=True)
    opt("--vllm-server-arg", "vllm_server_args", "extra argument for every server (repeatable), e.g. "
        "--vllm-server-arg=--attention-backend=TRITON_ATTN", ini_type="args", ini_default=[],
        action="append", metavar="ARG", default=None)
    opt("--vllm-health-timeout", "vllm_health_timeout", "seconds a server may take to become healthy "
        "(default 900)", metavar="SECONDS", default=None)
    opt("--vllm-capture-timeout", "vllm_capture_timeout", "seconds one capture may take (default 600)",
        metavar="SECONDS", default=None)
    parser.addini("vllm_capture_poll_s", "seconds between looks for new trace files (default 1.0)", default="1.0")
    opt("--vllm-max-servers", "vllm_max_servers", "servers kept alive at once per worker (default 1: a new "
        "server identity stops the oldest)", metavar="N", default=None)
    opt("--vllm-workers-per-gpu", "vllm_workers_per_gpu", "xdist workers sharing one GPU (set) (default 1: "
        "each worker gets its own GPUs; >1 runs several small servers per GPU)", metavar="N", default=None)
    opt("--vllm-results", "vllm_results", "results JSON file (default .vllm-profile/results.json under rootdir "
        "with --vllm-profile)", metavar="FILE", default=None)
    opt("--vllm-report", "vllm_report", "write the HTML report into this folder", metavar="DIR", default=None)
    opt("--vllm-trace-root", "vllm_trace_root", "folder under which each session keeps its traces and server "
        "logs (default .vllm-profile/sessions under rootdir)", metavar="DIR", default=None)


@dataclass
class PluginSettings:
    enabled: bool
    update_baselines: bool
    baseline_dir: Path
    launcher: str
    url: str | None
    trace_dir: Path | None
    python: str | None
    image: str | None
    allow_pull: bool
    docker_host: str | None
    profiler: str
    repeats: int
    rel_tol: float | None
    abs_floor_us: float | None
    fail_on_drift: bool
    server_args: tuple[str, ...]
    health_timeout_s: float
    capture_timeout_s: float
    capture_poll_s: float
    max_servers: int
    workers_per_gpu: int
    results_path: Path | None
    report_dir: Path | None
    trace_root: Path


def _value(config: pytest.Config, dest: str, ini: str | None) -> Any:
    """Command line first, then the ini key (pytest convention: the option overrides the ini)."""
    value = config.getoption(dest)
    if value is None and ini is not None:
        value = config.getini(ini)
    return value if value not in ("", []) else None


def _number(raw: Any, what: str, kind: type, minimum: float, default: Any) -> Any:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{what}={raw!r}: expected {'an integer' if kind is int else 'a number'}") from None
    if value < minimum:
        raise pytest.UsageError(f"{what}={raw!r}: must be >= {minimum}")
    return value


def _path(raw: Any, rootdir: Path) -> Path | None:
    if raw is None:
        return None
    path = Path(os.path.expanduser(str(raw)))
    return path if path.is_absolute() else rootdir / path


def read_settings(config: pytest.Config) -> PluginSettings:
    """All options resolved and validated; pytest.UsageError (exit code 4) on a bad value."""
    root = Path(config.rootpath)
    enabled = bool(config.getoption("vllm_profile"))
    launcher = _value(config, "vllm_launcher", "vllm_launcher") or "process"
    if launcher not in LAUNCHERS:
        raise pytest.UsageError(f"vllm_launcher={launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    profiler = _value(config, "vllm_profiler", "vllm_profiler") or "torch"
    if profiler not in PROFILERS:
        raise pytest.UsageError(f"vllm_profiler={profiler!r}: choose one of {', '.join(PROFILERS)}")
    url = _value(config, "vllm_url", "vllm_url")
    trace_dir = _path(_value(config, "vllm_trace_dir", "vllm_trace_dir"), Path.cwd())
    allow_pull_opt = config.getoption("vllm_allow_pull")
    fail_on_drift = not config.getoption("vllm_no_fail_on_drift") and bool(config.getini("vllm_fail_on_drift"))
    server_args = config.getoption("vllm_server_arg")
    if server_args is None:
        server_args = list(config.getini("vllm_server_args") or [])
    results_raw = _value(config, "vllm_results", "vllm_results")
    results_path = _path(results_raw, Path.cwd()) if results_raw else (
        root / ".vllm-profile" / "results.json" if enabled else None)
    settings = PluginSettings(
        enabled=enabled,
        update_baselines=bool(config.getoption("update_baselines")),
        baseline_dir=_path(_value(config, "baseline_dir", "vllm_baseline_dir"), root) or root / "baselines",
        launcher=launcher,
        url=url,
        trace_dir=trace_dir,
        python=_value(config, "vllm_python", "vllm_python"),
        image=_value(config, "vllm_image", "vllm_image"),
        allow_pull=bool(allow_pull_opt) if allow_pull_opt is not None else bool(config.getini("vllm_allow_pull")),
        docker_host=_value(config, "vllm_docker_host", "vllm_docker_host"),
        profiler=profiler,
        repeats=_number(_value(config, "vllm_repeats", "vllm_repeats"), "--vllm-repeats", int, 1, 3),
        rel_tol=_number(_value(config, "vllm_rel_tol", "vllm_rel_tol"), "--vllm-rel-tol", float, 0, None),
        abs_floor_us=_number(_value(config, "vllm_abs_floor_us", "vllm_abs_floor_us"), "--vllm-abs-floor-us",
                             float, 0, None),
        fail_on_drift=fail_on_drift,
        server_args=tuple(str(a) for a in server_args),
        health_timeout_s=_number(_value(config, "vllm_health_timeout", "vllm_health_timeout"),
                                 "--vllm-health-timeout", float, 1, 900.0),
        capture_timeout_s=_number(_value(config, "vllm_capture_timeout", "vllm_capture_timeout"),
                                  "--vllm-capture-timeout", float, 1, 600.0),
        capture_poll_s=_number(config.getini("vllm_capture_poll_s") or None, "vllm_capture_poll_s", float, 0.01, 1.0),
        max_servers=_number(_value(config, "vllm_max_servers", "vllm_max_servers"), "--vllm-max-servers", int, 1, 1),
        workers_per_gpu=_number(_value(config, "vllm_workers_per_gpu", "vllm_workers_per_gpu"),
                                "--vllm-workers-per-gpu", int, 1, 1),
        results_path=results_path,
        report_dir=_path(_value(config, "vllm_report", "vllm_report"), Path.cwd()),
        trace_root=_path(_value(config, "vllm_trace_root", "vllm_trace_root"), root)
        or root / ".vllm-profile" / "sessions",
    )
    if enabled:
        _validate_launcher(settings)
    return settings


def _validate_launcher(s: PluginSettings) -> None:
    if s.launcher == "url":
        if not s.url:
            raise pytest.UsageError("--vllm-launcher url needs --vllm-url URL (the running vLLM server)")
        if not s.url.startswith(("http://", "https://")):
            raise pytest.UsageError(f"--vllm-url {s.url!r}: must start with http:// or https://")
        if s.trace_dir is None:
            raise pytest.UsageError(
                "--vllm-launcher url needs --vllm-trace-dir DIR: the folder the server's torch profiler writes "
                "to (its torch_profiler_dir), as seen from this machine")
        if not s.trace_dir.is_dir():
            raise pytest.UsageError(f"--vllm-trace-dir {s.trace_dir}: no such folder")
    elif s.url:
        raise pytest.UsageError(f"--vllm-url is only used with --vllm-launcher url (launcher is {s.launcher})")
    if s.launcher == "process" and s.python and not (shutil.which(s.python) or Path(s.python).is_file()):
        raise pytest.UsageError(f"--vllm-python {s.python}: no such interpreter")
    if s.launcher != "docker" and (s.image or s.docker_host):
        raise pytest.UsageError(f"--vllm-image/--vllm-docker-host need --vllm-launcher docker (launcher is {s.launcher})")
    if s.launcher == "url" and s.profiler == "nsys":
        raise pytest.UsageError("--vllm-profiler nsys cannot be used with --vllm-launcher url (the plugin does not "
                                "control that server's profiler)")


# ---- session state ------------------------------------------------------------------------
@dataclass(eq=False)  # registered as a plugin object: identity, not value, equality
class PluginState:
    settings: PluginSettings
    config: pytest.Config
    session_dir: Path | None = None
    pool: ServerPool | None = None
    results: list[TestResult] = field(default_factory=list)
    session_stamp: str | None = None  # xdist controller: shared by all workers' session folders
    run_results: RunResults | None = None  # written at session end
    report_path: Path | None = None
    commit: str | None = None
    commit_known: bool = False

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    # Registered as a plugin object (pytest_configure), so this hook sees the session's state;
    # under xdist the controller runs it for the workers' reports.
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, RESULT_ATTR, None)
        if data is None or report.when != "teardown":
            return
        self.results.append(from_builtins(data, TestResult, f"the report of {report.nodeid}"))

    def get_pool(self) -> ServerPool:
        if self.pool is None:
            s = self.settings
            worker = worker_index()
            session_dir = self.ensure_session_dir()
            self.pool = ServerPool(
                PoolSettings(
                    launcher=s.launcher, profiler=s.profiler, extra_server_args=s.server_args,
                    health_timeout_s=s.health_timeout_s, trace_root=session_dir / "traces",
                    fixed_trace_dir=s.trace_dir if s.launcher == "url" else None,
                    log_root=session_dir / "logs", max_live_servers=s.max_servers, worker=worker,
                    cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                    gpu_count=nvidia_smi_gpu_count() if worker is not None else None,
                    workers_per_gpu=s.workers_per_gpu,
                ),
                launcher_factory=self.make_launcher,
            )
            atexit.register(self.pool.stop_all)  # KeyboardInterrupt / crash: no orphan servers
        return self.pool

    def ensure_session_dir(self) -> Path:
        if self.session_dir is None:
            stamp = (self.config.workerinput.get("vllm_session_stamp") if self.is_worker else None) or _stamp()
            name = os.environ.get("PYTEST_XDIST_WORKER") or "main"
            self.session_dir = self.settings.trace_root / stamp / name
            self.session_dir.mkdir(parents=True, exist_ok=True)
        return self.session_dir

    def make_launcher(self, spec: ServerSpec) -> Launcher:
        s = self.settings
        if s.launcher == "url":
            from .launchers.url import UrlLauncher

            return UrlLauncher(spec, url=s.url or "")
        if s.launcher == "docker":
            from .launchers.docker import ContainerOptions, DockerLauncher

            options = ContainerOptions(allow_pull=s.allow_pull, base_url=s.docker_host)
            if s.image:
                options.image = s.image
            return DockerLauncher(spec, options)
        from .launchers.process import ProcessLauncher

        return ProcessLauncher(spec, python=s.python)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"


def _state(config: pytest.Config) -> PluginState:
    return config.stash[STATE_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _marker_doc())
    state = PluginState(settings=read_settings(config), config=config)
    config.stash[STATE_KEY] = state
    config.pluginmanager.register(state, "vllm-profile-state")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        if state.pool is not None:
            state.pool.stop_all()
        if config.pluginmanager.is_registered(state):
            config.pluginmanager.unregister(state)


def _marker_doc() -> str:
    names = ", ".join(f"{f.name}=" for f in fields(Workload) if f.name != "model")
    return (
        f"{MARKER}(model=..., {names}): profile this vLLM workload (runs only with --vllm-profile). "
        "The test gets the median-of-repeats profile through the vllm_profile fixture "
        "(profile.token_steps, profile.layer_count, profile.kernel(name), profile.steps_of(kind)) and, once its "
        "body passed, is compared with its stored baseline (--update-baselines records it). Example: "
        "@pytest.mark.vllm_workload(model='Qwen/Qwen3-8B', max_tokens=10, prompts=['What is the capital of "
        "France?'], server_args=['--enforce-eager'], repeats=3)"
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: every worker keeps its traces under one shared session folder."""
    state = _state(node.config)
    state.session_stamp = state.session_stamp or _stamp()
    node.workerinput["vllm_session_stamp"] = state.session_stamp


# ---- collection -----------------------------------------------------------------------------
def workload_of(item: pytest.Item) -> Workload | None:
    """The merged `vllm_workload` markers of `item` (closest wins per argument); None if unmarked."""
    markers = list(item.iter_markers(MARKER))
    if not markers:
        return None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    for mark in reversed(markers):  # farthest (module) first, so the function's own marker wins
        args += tuple(mark.args)
        kwargs.update(mark.kwargs)
    return Workload.from_marker_kwargs(item.nodeid, args, kwargs)


def _prepare_item(item: pytest.Function, settings: PluginSettings) -> None:
    """Validate the marker (raising a collect error that names the test) and wire the item."""
    try:
        workload = workload_of(item)
    except WorkloadError as exc:
        raise pytest.Collector.CollectError(f"invalid @pytest.mark.{MARKER}: {exc}") from None
    if workload is None:
        if "vllm_profile" in item.fixturenames:
            raise pytest.Collector.CollectError(
                f"{item.nodeid}: uses the vllm_profile fixture but has no @pytest.mark.{MARKER}(model=...) "
                "saying what to profile")
        return
    item.stash[WORKLOAD_KEY] = workload
    if "vllm_profile" not in item.fixturenames:
        item.fixturenames.append("vllm_profile")  # a marker alone is a baseline check of the workload
    if not settings.enabled:
        item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    # Raising here fails the collection of the module (or class) with the message alone:
    # "ERROR collecting ..." and exit code 2, with or without --vllm-profile.
    result = yield
    if result is None:
        return result
    settings = _state(collector.config).settings
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, pytest.Function):
            _prepare_item(item, settings)
    return result


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def vllm_server_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """One vLLM server per distinct server identity, shared by the session (or xdist worker)."""
    state = _state(request.config)
    if not state.settings.enabled:
        pytest.skip(SKIP_REASON)
    pool = state.get_pool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def vllm_profile(request: pytest.FixtureRequest, vllm_server_pool: ServerPool) -> Any:
    """The profile (median of repeats) of this test's `vllm_workload` on its pooled server."""
    from .workload_profile import BaselineSettings, CaptureSettings, profile_workload

    item = request.node
    state = _state(request.config)
    s = state.settings
    workload = item.stash.get(WORKLOAD_KEY, None)
    if workload is None:  # marker added after collection (e.g. by a conftest hook)
        try:
            workload = workload_of(item)
        except WorkloadError as exc:
            workload, problem = None, str(exc)
        else:
            problem = None
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        if workload is None:
            pytest.fail(f"{item.nodeid}: vllm_profile needs @pytest.mark.{MARKER}(model=...)", pytrace=False)
        item.stash[WORKLOAD_KEY] = workload
    problem = None
    try:
        pooled = vllm_server_pool.get(workload)
        if pooled.uses == 1:
            item.stash[BOOT_KEY] = pooled.boot_s
        profile = profile_workload(
            item.nodeid, workload, pooled,
            CaptureSettings(repeats=s.repeats, timeout_s=s.capture_timeout_s, poll_interval_s=s.capture_poll_s),
            BaselineSettings(root=s.baseline_dir, update=s.update_baselines, rel_tol=s.rel_tol,
                             abs_floor_us=s.abs_floor_us, fail_on_drift=s.fail_on_drift, commit=_commit(state)),
        )
    except VllmProfileError as exc:
        problem = f"{item.nodeid}: {type(exc).__name__}: {exc}"
    if problem is not None:  # raised outside the except block: the message alone, no exception chain
        pytest.fail(problem, pytrace=False)
    item.stash[PROFILE_KEY] = profile
    return profile


# ---- baseline after the body ----------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield  # a failing body raises here: no comparison, no baseline written
    profile = item.stash.get(PROFILE_KEY, None)
    if profile is None:
        return result
    from .workload_profile import check_baseline, update_baseline

    expected = profile.workload.expected_layers
    if expected is not None and profile.layer_count != expected:
        item.user_properties.append(("vllm_verdict", "structure"))
        pytest.fail(f"{item.nodeid}: found {profile.layer_count} decoder layers per step, the vllm_workload marker "
                    f"expects expected_layers={expected}", pytrace=False)
    settings = profile.baseline_settings
    problem = None
    try:
        if settings.update:
            outcome = update_baseline(profile, settings)
        elif profile.baseline_outcome is not None:  # the test called assert_matches_baseline()
            outcome = profile.baseline_outcome
        else:
            outcome = check_baseline(profile, settings)
    except VllmProfileError as exc:
        problem = f"{item.nodeid}: {type(exc).__name__}: {exc}"
    if problem is not None:
        item.user_properties.append(("vllm_verdict", "error"))
        pytest.fail(problem, pytrace=False)
    profile.baseline_outcome = outcome
    _add_junit_properties(item, profile, outcome)
    if outcome.fails_test:
        pytest.fail(outcome.message, pytrace=False)
    return result


def _add_junit_properties(item: pytest.Item, profile: Any, outcome: Any) -> None:
    props = item.user_properties
    props.append(("vllm_verdict", outcome.verdict))
    props.append(("vllm_token_steps", profile.token_steps))
    props.append(("vllm_layer_count", profile.layer_count))
    if profile.decode_step_us is not None:
        props.append(("vllm_decode_step_us", f"{profile.decode_step_us:.1f}"))
    comparison = outcome.comparison
    if comparison is not None:
        for st in comparison.step_times:
            props.append((f"vllm_{st.kind}_step_delta_pct", f"{st.delta_pct:+.2f}"))
    if outcome.baseline_path is not None:
        props.append(("vllm_baseline", str(outcome.baseline_path)))


# ---- results --------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    workload = item.stash.get(WORKLOAD_KEY, None)
    if workload is None:
        return report
    phases = item.stash.setdefault(PHASES_KEY, {})
    phases[report.when] = report.outcome
    phases.setdefault("message", "")
    if report.failed and not phases["message"]:
        phases["message"] = _short_message(report)
    phases["duration"] = phases.get("duration", 0.0) + report.duration
    if report.when == "teardown":
        setattr(report, RESULT_ATTR, to_builtins(_test_result(item, workload, phases)))
    return report


def _short_message(report: pytest.TestReport) -> str:
    """The exception line of a failure ("assert 36 == 32", the baseline explanation), else the log tail."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or getattr(report, "longreprtext", "") or ""
    if text.startswith("Failed: "):
        text = text[len("Failed: "):]
    return text[-4000:]


def _test_result(item: pytest.Item, workload: Workload, phases: dict[str, Any]) -> TestResult:
    outcome: Outcome
    if phases.get("setup") == "skipped" or phases.get("call") == "skipped":
        outcome = "skipped"
    elif phases.get("setup") == "failed":
        outcome = "error"
    elif phases.get("call") == "failed":
        outcome = "failed"
    elif phases.get("teardown") == "failed":
        outcome = "error"
    else:
        outcome = "passed"
    result = TestResult(nodeid=item.nodeid, outcome=outcome, workload=workload.to_dict(),
                        duration_s=round(phases.get("duration", 0.0), 3),
                        server_boot_s=item.stash.get(BOOT_KEY, None))
    profile = item.stash.get(PROFILE_KEY, None)
    # The baseline outcome of a passed body, or the failing one that failed it (also when the
    # body's own assert_matches_baseline() raised).
    baseline_outcome = profile.baseline_outcome if profile is not None else None
    if baseline_outcome is not None and phases.get("call") != "passed" and not baseline_outcome.fails_test:
        baseline_outcome = None
    if outcome == "skipped":
        result.message = phases.get("message") or SKIP_REASON
        return result
    if profile is not None:
        result.summary = profile.summary
        result.requests = list(profile.requests)
        result.trace_paths = [str(p) for p in profile.trace_paths]
    if baseline_outcome is not None:
        result.verdict = baseline_outcome.verdict
        result.baseline_path = str(baseline_outcome.baseline_path) if baseline_outcome.baseline_path else None
        result.baseline_changed = baseline_outcome.baseline_changed
        if baseline_outcome.comparison is not None:
            result.comparison = baseline_outcome.comparison
        if baseline_outcome.baseline_summary is not None:
            result.baseline_summary = baseline_outcome.baseline_summary
        result.message = baseline_outcome.message
    if outcome != "passed" and (not result.message or baseline_outcome is None or not baseline_outcome.fails_test):
        result.message = phases.get("message", "")
    return result


def _commit(state: PluginState) -> str | None:
    """The checkout's commit (read-only `git rev-parse`), cached; None outside git."""
    if not state.commit_known:
        commit = os.environ.get("GITHUB_SHA")
        if not commit and shutil.which("git"):
            try:
                commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=state.config.rootpath, capture_output=True,
                                        text=True, timeout=10).stdout.strip() or None
            except (OSError, subprocess.SubprocessError):
                commit = None
        state.commit, state.commit_known = commit, True
    return state.commit


def build_run_results(state: PluginState) -> RunResults:
    from .baseline import keys_for_summary  # lazy: jsonschema is not loaded by plain pytest runs

    tests = sorted(state.results, key=lambda t: t.nodeid)
    gpu = vllm_version = None
    for t in tests:
        if t.summary is not None:
            gpu = keys_for_summary(t.summary)[0]
            vllm_version = t.summary.runtime.vllm_version
            break
    return RunResults(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        commit=_commit(state), gpu=gpu, vllm_version=vllm_version,
        launcher=state.settings.launcher, profiler=state.settings.profiler, tests=tests,
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    if state.pool is not None:
        state.pool.stop_all()  # also on KeyboardInterrupt, where session fixtures may not tear down
    if state.is_worker:
        return
    if state.settings.results_path is None or not (state.settings.enabled or state.results):
        return
    results = build_run_results(state)
    try:
        results.save(state.settings.results_path)
    except OSError as exc:
        warnings.warn(f"pytest-vllm-profile: cannot write {state.settings.results_path}: {exc}")
        return
    state.run_results = results
    _write_reports(state, results)


def _write_reports(state: PluginState, results: RunResults) -> None:
    if state.settings.report_dir is not None:
        try:
            from .report.html import write_html_report
        except ImportError as exc:
            warnings.warn(f"pytest-vllm-profile: HTML report not written ({exc})")
        else:
            try:
                state.report_path = write_html_report(results, state.settings.report_dir)
            except VllmProfileError as exc:
                warnings.warn(f"pytest-vllm-profile: HTML report not written: {exc}")
    try:
        from .report.markdown import maybe_write_github_summary

        maybe_write_github_summary(results)  # appends: the file is shared by the job's steps
    except (ImportError, VllmProfileError) as exc:
        warnings.warn(f"pytest-vllm-profile: job summary not written: {exc}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or state.is_worker or not state.results:
        return
    if not state.settings.enabled and all(t.outcome == "skipped" for t in state.results):
        return  # a plain run: pytest's own skip summary says why; no section full of SKIPPED lines
    from .report.terminal import render_terminal_summary

    terminalreporter.write_sep("=", "vllm-profile")
    results = state.run_results or build_run_results(state)
    for line in render_terminal_summary(results):
        terminalreporter.write_line(line)
    if state.run_results is not None and state.settings.results_path is not None:
        terminalreporter.write_line(f"results: {state.settings.results_path}")
    if state.report_path is not None:
        terminalreporter.write_line(f"HTML report: {state.report_path}")
