"""Every setting of a session, declared once: the option table, its defaults, and the settings
objects the library's steps take.

`OPTIONS` is the one declaration of each `pytest --vllm-*` option and ini key (flag, ini key,
type, default, help, choices, lower bound). The plugin (`plugin/options.py`) turns it into
`addoption` / `addini` calls and hands the values it reads back to `resolve_settings`; the
README check in tests/plugin/test_plugin_options.py reads it too. The defaults are the `DEFAULT_*`
constants below, so the library's own classes (`CaptureSettings` here, `pool.PoolSettings`,
`launchers.base.ServerSpec`, `capture.ProfileCapture`) name the same value instead of
repeating it.

No pytest imports, and no imports of other library modules but `errors` (the launchers and
the pool import their defaults from here).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .errors import VllmProfileError

# The built-in launchers; a `pytest_vllm_profile_make_launcher` hook implementation may serve
# any of them differently (docs/hooks.md).
LAUNCHERS = ("process", "docker", "url")
PROFILERS = ("torch", "nsys")
# How an nsys run captures (issue 14, launchers/nsys.py): auto picks per server -- cuda-range where
# vLLM's cuda profiler opens the range (GPU builds), else an nsys interactive session.
NSYS_MODES = ("auto", "cuda-range", "session")
DEFAULT_NSYS_MODE = "auto"

DEFAULT_LAUNCHER = "process"
DEFAULT_PROFILER = "torch"
# Profiles per test, combined into their median: one capture against one failed even a 35 %
# tolerance on the CPU server, three on both sides passed the default tolerances in 3 of 3
# re-checks (docs/cpu-backend.md).
DEFAULT_REPEATS = 3
# Timed (unprofiled) repeats per test (issue 12), unless the marker says. Three: the smallest
# number whose run-to-run spread (TimedPassResult.run_medians) is a noise estimate at all; a
# repeat costs one unprofiled pass of the workload (on the vLLM CPU server's tiny model 0.2-1 s,
# against 2-4 s for a profiled repeat with its /stop_profile flush), so it stays cheap.
DEFAULT_TIMED_REPEATS = 3
# Start to healthy: 249.5-263.5 s measured for a cold Qwen3-8B boot on an H100 (torch.compile
# and CUDA-graph capture, docs/gpu-validation.md); bigger models and cold image pulls take longer.
DEFAULT_HEALTH_TIMEOUT_S = 900.0
# One HTTP request of a capture: a big /stop_profile flush of the trace takes minutes.
DEFAULT_CAPTURE_TIMEOUT_S = 600.0
DEFAULT_CAPTURE_POLL_S = 1.0  # between looks for new trace files (one capture took 3-4 s on an H100)
DEFAULT_MAX_SERVERS = 1  # two servers on one GPU set would fight for its memory
DEFAULT_WORKERS_PER_GPU = 1
DEFAULT_IMAGE = "vllm/vllm-openai"  # the docker launcher's image (its tag: latest)
# Folders and files under the rootdir when the option is not given.
DEFAULT_BASELINE_DIR = "baselines"
DEFAULT_TRACE_ROOT = ".vllm-profile/sessions"
DEFAULT_RESULTS_FILE = ".vllm-profile/results.json"  # written only with --vllm-profile
# Issue 13: the run history database (SQLite file under rootdir, or a postgresql:// URL);
# appended to only with --vllm-profile. HISTORY_OFF turns it off.
DEFAULT_HISTORY_FILE = ".vllm-profile/history.sqlite"
HISTORY_OFF = "off"

# Issue 13 item 3, across vLLM versions: what the kernel-set diff does to the verdict.
CROSS_VERSION_DRIFT = ("report", "fail")
DEFAULT_CROSS_VERSION_DRIFT = "report"

# Session folders (traces + server logs) kept under the trace root, this one included: 19
# sessions of a two-test project grew .vllm-profile/ to 159 MB (issue 15). 0 keeps all.
DEFAULT_KEEP_SESSIONS = 5

OptionType = Literal["bool", "str", "choice", "int", "float", "path", "args"]


class SettingsError(VllmProfileError):
    """An option or ini value is invalid (the plugin reports it as a usage error, exit code 4)."""


@dataclass(frozen=True)
class Option:
    """One setting: its command-line flag and/or ini key, type, default and help.

    `help` may name `{default}` (formatted with the default). `name` is the field of
    `SessionSettings` it fills.
    """

    name: str
    help: str
    flag: str | None = None
    ini: str | None = None
    type: OptionType = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    metavar: str | None = None
    negates: bool = False  # a bool flag that turns the setting off (--vllm-no-fail-on-drift)
    ini_help: str | None = None  # when the ini key's help differs from the flag's
    relative_to: Literal["cwd", "rootdir"] = "cwd"  # paths given relative

    @property
    def dest(self) -> str:
        """The argparse destination (`config.getoption(dest)`), from the flag."""
        return (self.flag or self.name).lstrip("-").replace("-", "_")

    @property
    def help_text(self) -> str:
        return self.help.format(default=self.default)

    @property
    def label(self) -> str:
        """How error messages name the setting: the flag, else the ini key."""
        return self.flag or self.ini or self.name

    def parse(self, raw: Any) -> Any:
        """The validated value of `raw` (None: not given -> the default); SettingsError if bad."""
        if raw is None or raw == "" or raw == []:
            return self.default
        if self.type in ("int", "float"):
            kind = int if self.type == "int" else float
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise SettingsError(
                    f"{self.label}={raw!r}: expected {'an integer' if kind is int else 'a number'}"
                ) from None
            if self.minimum is not None and value < self.minimum:
                raise SettingsError(f"{self.label}={raw!r}: must be >= {self.minimum}")
            return value
        if self.type == "choice":
            if raw not in self.choices:
                # argparse checks the flag's choices itself: this one came from the ini file
                raise SettingsError(f"{self.ini or self.label}={raw!r}: choose one of {', '.join(self.choices)}")
            return raw
        if self.type == "bool":
            return bool(raw)
        if self.type == "args":
            return tuple(str(a) for a in raw)
        return raw


OPTIONS: tuple[Option, ...] = (
    Option(
        "enabled",
        "run the vllm_workload tests (profile vLLM); without it they are skipped",
        flag="--vllm-profile",
        type="bool",
        default=False,
    ),
    Option(
        "update_baselines",
        "write the baselines of tests whose body passed instead of comparing",
        flag="--update-baselines",
        type="bool",
        default=False,
    ),
    Option(
        "baseline_dir",
        "folder of the baseline files (default: {default}/ under rootdir)",
        flag="--baseline-dir",
        ini="vllm_baseline_dir",
        type="path",
        default=DEFAULT_BASELINE_DIR,
        metavar="DIR",
        relative_to="rootdir",
    ),
    Option(
        "launcher",
        "how to get a vLLM server: process (local vllm serve), docker, url (attach to a running "
        "server); default {default}",
        flag="--vllm-launcher",
        ini="vllm_launcher",
        type="choice",
        default=DEFAULT_LAUNCHER,
        choices=LAUNCHERS,
    ),
    Option("url", "URL of a running vLLM server (url launcher)", flag="--vllm-url", ini="vllm_url", metavar="URL"),
    Option(
        "trace_dir",
        "folder the attached server writes its traces to, as seen from here (url launcher)",
        flag="--vllm-trace-dir",
        ini="vllm_trace_dir",
        type="path",
        metavar="DIR",
    ),
    Option(
        "python",
        "python interpreter that has vLLM (process launcher), e.g. .venv-vllm-cpu/bin/python",
        flag="--vllm-python",
        ini="vllm_python",
        metavar="PYTHON",
    ),
    # (None: the docker launcher's ContainerOptions.image, untagged: latest)
    Option(
        "image",
        f"container image (docker launcher), default {DEFAULT_IMAGE}:latest",
        flag="--vllm-image",
        ini="vllm_image",
        metavar="IMAGE",
    ),
    Option(
        "allow_pull",
        "let the docker launcher pull a missing image",
        flag="--vllm-allow-pull",
        ini="vllm_allow_pull",
        type="bool",
        default=False,
    ),
    Option(
        "docker_host",
        "Docker/Podman API URL, e.g. unix:///run/podman/podman.sock",
        flag="--vllm-docker-host",
        ini="vllm_docker_host",
        metavar="URL",
    ),
    Option(
        "profiler",
        "profiler the server runs: torch (default) or nsys",
        flag="--vllm-profiler",
        ini="vllm_profiler",
        type="choice",
        default=DEFAULT_PROFILER,
        choices=PROFILERS,
    ),
    Option(
        "repeats",
        "profiles per test (median + spread), unless the marker says; default {default}",
        flag="--vllm-repeats",
        ini="vllm_repeats",
        type="int",
        default=DEFAULT_REPEATS,
        minimum=1,
        metavar="N",
    ),
    # ---- timed pass (issue 12)
    Option(
        "timed_repeats",
        "timed (unprofiled) repeats per test measuring TTFT/TPOT/ITL/throughput, unless the "
        "marker's timed_repeats= says; 0: no timed pass (default {default})",
        flag="--vllm-timed-repeats",
        ini="vllm_timed_repeats",
        type="int",
        default=DEFAULT_TIMED_REPEATS,
        minimum=0,
        metavar="N",
    ),
    Option(
        "rel_tol",
        "relative time tolerance, e.g. 0.02 for 2%",
        flag="--vllm-rel-tol",
        ini="vllm_rel_tol",
        type="float",
        minimum=0,
        metavar="FRACTION",
    ),
    Option(
        "abs_floor_us",
        "smallest time change (µs per step) that can regress a kernel/layer",
        flag="--vllm-abs-floor-us",
        ini="vllm_abs_floor_us",
        type="float",
        minimum=0,
        metavar="US",
    ),
    Option(
        "fail_on_drift",
        "report new/missing kernels without failing the test",
        flag="--vllm-no-fail-on-drift",
        ini="vllm_fail_on_drift",
        type="bool",
        default=True,
        negates=True,
        ini_help="new/missing kernels fail the test (default true)",
    ),
    Option(
        "server_args",
        "extra argument for every server (repeatable), e.g. --vllm-server-arg=--attention-backend=TRITON_ATTN",
        flag="--vllm-server-arg",
        ini="vllm_server_args",
        type="args",
        default=(),
        metavar="ARG",
    ),
    Option(
        "health_timeout_s",
        "seconds a server may take to become healthy (default {default:g})",
        flag="--vllm-health-timeout",
        ini="vllm_health_timeout",
        type="float",
        default=DEFAULT_HEALTH_TIMEOUT_S,
        minimum=1,
        metavar="SECONDS",
    ),
    Option(
        "capture_timeout_s",
        "seconds one capture may take (default {default:g})",
        flag="--vllm-capture-timeout",
        ini="vllm_capture_timeout",
        type="float",
        default=DEFAULT_CAPTURE_TIMEOUT_S,
        minimum=1,
        metavar="SECONDS",
    ),
    Option(
        "capture_poll_s",
        "seconds between looks for new trace files (default {default})",
        ini="vllm_capture_poll_s",
        type="float",
        default=DEFAULT_CAPTURE_POLL_S,
        minimum=0.01,
    ),
    Option(
        "max_servers",
        "servers kept alive at once per worker (default {default}: a new server identity stops the oldest)",
        flag="--vllm-max-servers",
        ini="vllm_max_servers",
        type="int",
        default=DEFAULT_MAX_SERVERS,
        minimum=1,
        metavar="N",
    ),
    Option(
        "workers_per_gpu",
        "xdist workers sharing one GPU (set) (default {default}: each worker gets its own "
        "GPUs; >1 runs several small servers per GPU)",
        flag="--vllm-workers-per-gpu",
        ini="vllm_workers_per_gpu",
        type="int",
        default=DEFAULT_WORKERS_PER_GPU,
        minimum=1,
        metavar="N",
    ),
    Option(
        "results_path",
        f"results JSON file (default {DEFAULT_RESULTS_FILE} under rootdir with --vllm-profile)",
        flag="--vllm-results",
        ini="vllm_results",
        type="path",
        metavar="FILE",
    ),
    Option(
        "report_dir",
        "write the HTML report into this folder",
        flag="--vllm-report",
        ini="vllm_report",
        type="path",
        metavar="DIR",
    ),
    Option(
        "trace_root",
        "folder under which each session keeps its traces and server logs (default {default} under rootdir)",
        flag="--vllm-trace-root",
        ini="vllm_trace_root",
        type="path",
        default=DEFAULT_TRACE_ROOT,
        metavar="DIR",
        relative_to="rootdir",
    ),
    # issue 13: the run history (docs/history.md)
    Option(
        "history",
        f"history database every profiled run is appended to: an SQLite file or a postgresql:// URL "
        f"(default {DEFAULT_HISTORY_FILE} under rootdir; {HISTORY_OFF}: none)",
        flag="--vllm-history",
        ini="vllm_history",
        metavar="PATH_OR_URL",
    ),
    # -- issue 13 item 3: across vLLM versions ----------------------------------------------
    Option(
        "baseline_version",
        "compare with this vLLM version's baseline entry (same GPU) instead of the running "
        "version's; without it, a version with no entry of its own is compared with the newest older one",
        flag="--vllm-baseline-version",
        ini="vllm_baseline_version",
        metavar="VERSION",
    ),
    Option(
        "cross_version_drift",
        "kernels that appear/disappear between vLLM versions: report (default: shown as "
        "'what changed between A and B') or fail (fail the test as kernel-set drift)",
        flag="--vllm-cross-version-drift",
        ini="vllm_cross_version_drift",
        type="choice",
        default=DEFAULT_CROSS_VERSION_DRIFT,
        choices=CROSS_VERSION_DRIFT,
    ),
    # ---- issue 15: what a user meets in a run ----
    Option(
        "keep_sessions",
        "session folders kept under the trace root, this one included; older ones are deleted "
        "at the start of a session (default {default}; 0 keeps all)",
        flag="--vllm-keep-sessions",
        ini="vllm_keep_sessions",
        type="int",
        default=DEFAULT_KEEP_SESSIONS,
        minimum=0,
        metavar="N",
    ),
    # ---- issue 14: Nsight Systems ----
    Option(
        "nsys",
        "the nsys executable (or its folder) for --vllm-profiler nsys; default: PATH, then the usual install folders",
        flag="--vllm-nsys",
        ini="vllm_nsys",
        metavar="PATH",
    ),
    Option(
        "nsys_mode",
        "how nsys captures: auto (default: cuda-range on GPU builds, else session), cuda-range "
        "(vLLM's cuda profiler opens the range), session (nsys start/stop around the workload)",
        flag="--vllm-nsys-mode",
        ini="vllm_nsys_mode",
        type="choice",
        default=DEFAULT_NSYS_MODE,
        choices=NSYS_MODES,
    ),
)
OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


@dataclass
class CaptureSettings:
    """How the fixture drives captures (from the command line / ini)."""

    repeats: int = DEFAULT_REPEATS  # used when the workload does not say
    timed_repeats: int = DEFAULT_TIMED_REPEATS  # timed (unprofiled) repeats, when the workload does not say
    timeout_s: float = DEFAULT_CAPTURE_TIMEOUT_S
    poll_interval_s: float = DEFAULT_CAPTURE_POLL_S


@dataclass
class BaselineSettings:
    """How the session treats baselines (from the command line / ini, per test from the marker)."""

    root: Path
    update: bool = False
    rel_tol: float | None = None  # None: comparator.Tolerances' default
    abs_floor_us: float | None = None
    fail_on_drift: bool = True  # new / missing kernels fail the verdict (else only reported)
    commit: str | None = None
    # issue 13 item 3: the vLLM version whose entry to compare with (None: the running one's,
    # else the newest older one), and whether cross-version kernel-set drift fails
    baseline_version: str | None = None
    cross_version_drift: str = DEFAULT_CROSS_VERSION_DRIFT

    def with_overrides(
        self, rel_tol: float | None = None, abs_floor_us: float | None = None, fail_on_drift: bool | None = None
    ) -> BaselineSettings:
        """These settings with a test's own tolerances (None keeps the session's)."""
        changes: dict[str, Any] = {}
        for name, value in (("rel_tol", rel_tol), ("abs_floor_us", abs_floor_us), ("fail_on_drift", fail_on_drift)):
            if value is not None:
                changes[name] = value
        return replace(self, **changes) if changes else self


@dataclass(frozen=True)
class SessionSettings:
    """Every option of the session, resolved and validated (one field per `OPTIONS` entry)."""

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
    timed_repeats: int
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
    history: str | None  # SQLite path (absolute) or postgresql:// URL; None: no history
    baseline_version: str | None  # issue 13 item 3
    cross_version_drift: str
    keep_sessions: int
    nsys: str | None = None
    nsys_mode: str = DEFAULT_NSYS_MODE

    def capture_settings(self) -> CaptureSettings:
        return CaptureSettings(
            repeats=self.repeats,
            timed_repeats=self.timed_repeats,
            timeout_s=self.capture_timeout_s,
            poll_interval_s=self.capture_poll_s,
        )

    def baseline_settings(self, commit: str | None) -> BaselineSettings:
        return BaselineSettings(
            root=self.baseline_dir,
            update=self.update_baselines,
            rel_tol=self.rel_tol,
            abs_floor_us=self.abs_floor_us,
            fail_on_drift=self.fail_on_drift,
            commit=commit,
            baseline_version=self.baseline_version,
            cross_version_drift=self.cross_version_drift,
        )


def _path(raw: Any, base: Path) -> Path:
    path = Path(os.path.expanduser(str(raw)))
    return path if path.is_absolute() else base / path


def resolve_settings(raw: Mapping[str, Any], rootdir: Path, cwd: Path) -> SessionSettings:
    """`SessionSettings` from each option's raw value (`raw[name]`, None: not given).

    Paths given relative are taken from the working folder or the rootdir (`Option.relative_to`);
    the defaults are under the rootdir. Raises SettingsError on a bad value.
    """
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given = raw.get(option.name)
        value = option.parse(given)
        if option.type == "path" and value is not None:
            value = _path(value, rootdir if option.relative_to == "rootdir" or given in (None, "") else cwd)
        values[option.name] = value
    if values["results_path"] is None and values["enabled"]:
        values["results_path"] = rootdir / DEFAULT_RESULTS_FILE
    values["history"] = _history_location(values["history"], values["enabled"], rootdir, cwd)
    return SessionSettings(**values)


def _history_location(given: str | None, enabled: bool, rootdir: Path, cwd: Path) -> str | None:
    """The history database: a URL as given, a path made absolute, the default when profiling."""
    if given == HISTORY_OFF or (given is None and not enabled):
        return None
    if given is None:
        return str(rootdir / DEFAULT_HISTORY_FILE)
    if "://" in given:
        if not given.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"--vllm-history={given!r}: a URL must be postgresql://...; else give an SQLite file")
        return given
    return str(_path(given, cwd))


def check_launcher_settings(s: SessionSettings) -> None:
    """The launcher options agree with each other (checked when profiling); SettingsError if not."""
    if s.launcher == "url":
        if not s.url:
            raise SettingsError("--vllm-launcher url needs --vllm-url URL (the running vLLM server)")
        if not s.url.startswith(("http://", "https://")):
            raise SettingsError(f"--vllm-url {s.url!r}: must start with http:// or https://")
        if s.trace_dir is None:
            raise SettingsError(
                "--vllm-launcher url needs --vllm-trace-dir DIR: the folder the server's torch profiler writes "
                "to (its torch_profiler_dir), as seen from this machine"
            )
        if not s.trace_dir.is_dir():
            raise SettingsError(f"--vllm-trace-dir {s.trace_dir}: no such folder")
    elif s.url:
        raise SettingsError(f"--vllm-url is only used with --vllm-launcher url (launcher is {s.launcher})")
    if s.launcher == "process" and s.python and not (shutil.which(s.python) or Path(s.python).is_file()):
        raise SettingsError(f"--vllm-python {s.python}: no such interpreter")
    if s.launcher != "docker" and (s.image or s.docker_host):
        raise SettingsError(f"--vllm-image/--vllm-docker-host need --vllm-launcher docker (launcher is {s.launcher})")
    if s.launcher == "url" and s.profiler == "nsys":
        raise SettingsError(
            "--vllm-profiler nsys cannot be used with --vllm-launcher url (the plugin does not "
            "control that server's profiler)"
        )
