"""The settings objects the library's steps take, resolved from the option table.

`resolve_settings` turns each option's raw value (command line / ini, read by the plugin) into
one validated `SessionSettings`; it hands each step its part (`CaptureSettings`,
`BaselineSettings`). The option table is `option_table.OPTIONS`, the defaults
`setting_defaults`; the table's names are importable from here as well, where callers have
always found them.

No pytest imports, and no imports of other library modules but `errors` and those two.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .option_table import OPTIONS, OPTIONS_BY_NAME, Option, OptionType, SettingsError
from .setting_defaults import (
    DEFAULT_CAPTURE_POLL_S,
    DEFAULT_CAPTURE_TIMEOUT_S,
    DEFAULT_CROSS_VERSION_DRIFT,
    DEFAULT_HISTORY_FILE,
    DEFAULT_NSYS_MODE,
    DEFAULT_REPEATS,
    DEFAULT_RESULTS_FILE,
    DEFAULT_TIMED_REPEATS,
    HISTORY_OFF,
)

__all__ = [
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "BaselineSettings",
    "CaptureSettings",
    "Option",
    "OptionType",
    "SessionSettings",
    "SettingsError",
    "check_launcher_settings",
    "resolve_settings",
]


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
