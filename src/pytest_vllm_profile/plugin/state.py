"""What the plugin keeps: one `SessionState` per session (or xdist worker), one `ItemState` per marked test.

Both live in pytest stashes: `SESSION_KEY` on the config, `ITEM_KEY` on each marked item.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..errors import LauncherError
from ..pool import PoolSettings, ServerPool, nvidia_smi_gpu_count, worker_index
from ..results import RunResults, TestResult
from ..sessions import new_stamp
from ..settings import SessionSettings
from ..workload import Workload
from .run_results import RESULT_ATTR, result_from_report_attr
from .session_checks import stop_servers

if TYPE_CHECKING:
    from ..launchers.base import Launcher, ServerSpec
    from ..workload_profile import VllmProfile


@dataclass
class ItemState:
    """Everything the plugin knows about one marked test (one stash entry)."""

    workload: Workload
    profile: VllmProfile | None = None  # set by the vllm_profile fixture
    server_boot_s: float | None = None  # set on the test that booted its server: start to healthy
    phase_outcomes: dict[str, str] = field(default_factory=dict)  # "setup"/"call"/"teardown" -> outcome
    message: str = ""  # the first failure's short message
    duration_s: float = 0.0  # of all phases so far
    preflight_problems: list[str] = field(default_factory=list)  # plugin/preflight.py: fail at setup, before a boot


@dataclass(eq=False)  # registered as a plugin object: identity, not value, equality
class SessionState:
    settings: SessionSettings
    config: pytest.Config
    session_dir: Path | None = None
    pool: ServerPool | None = None
    results: list[TestResult] = field(default_factory=list)
    session_stamp: str | None = None  # xdist controller: shared by all workers' session folders
    run_results: RunResults | None = None  # written at session end
    report_path: Path | None = None
    history_notes: list[str] = field(default_factory=list)  # for the terminal section (plugin/history.py)
    own_results_path: Path | None = None  # this session's results under its session folder (issue 17)
    _commit: str | None = None
    _commit_known: bool = False

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    # Registered as a plugin object (pytest_configure), so this hook sees the session's state;
    # under xdist the controller runs it for the workers' reports.
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, RESULT_ATTR, None)
        if data is None or report.when != "teardown":
            return
        self.results.append(result_from_report_attr(data, report.nodeid))

    def commit(self) -> str | None:
        """The commit of this run (`pytest_vllm_profile_commit` hook), asked once."""
        if not self._commit_known:
            self._commit = self.config.hook.pytest_vllm_profile_commit(config=self.config)
            self._commit_known = True
        return self._commit

    def get_pool(self) -> ServerPool:
        if self.pool is None:
            s = self.settings
            worker = worker_index()
            session_dir = self.ensure_session_dir()
            self.pool = ServerPool(
                PoolSettings(
                    launcher=s.launcher,
                    profiler=s.profiler,
                    extra_server_args=s.server_args,
                    health_timeout_s=s.health_timeout_s,
                    trace_root=session_dir / "traces",
                    fixed_trace_dir=s.trace_dir if s.launcher == "url" else None,
                    log_root=session_dir / "logs",
                    max_live_servers=s.max_servers,
                    worker=worker,
                    cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                    gpu_count=nvidia_smi_gpu_count() if worker is not None else None,
                    workers_per_gpu=s.workers_per_gpu,
                ),
                launcher_factory=self.make_launcher,
            )
            atexit.register(stop_servers, self.pool)  # KeyboardInterrupt / crash: no orphan servers
        return self.pool

    def ensure_session_dir(self) -> Path:
        if self.session_dir is None:
            worker_input = getattr(self.config, "workerinput", {})  # set by xdist on a worker's config
            stamp = worker_input.get("vllm_session_stamp") or self.session_stamp or new_stamp()
            name = os.environ.get("PYTEST_XDIST_WORKER") or "main"
            self.session_dir = self.settings.trace_root / stamp / name
            self.session_dir.mkdir(parents=True, exist_ok=True)
        return self.session_dir

    def make_launcher(self, spec: ServerSpec) -> Launcher:
        """The launcher of the first `pytest_vllm_profile_make_launcher` implementation that makes one."""
        launcher: Launcher | None = self.config.hook.pytest_vllm_profile_make_launcher(
            config=self.config, spec=spec, settings=self.settings
        )
        if launcher is None:
            raise LauncherError(
                f"no pytest_vllm_profile_make_launcher implementation made a launcher for "
                f"--vllm-launcher {self.settings.launcher}"
            )
        return launcher


SESSION_KEY = pytest.StashKey[SessionState]()
ITEM_KEY = pytest.StashKey[ItemState]()


def session_state(config: pytest.Config) -> SessionState:
    return config.stash[SESSION_KEY]


def item_state(item: pytest.Item) -> ItemState | None:
    """The plugin's state of a marked test; None for a test without a vllm_workload marker."""
    return item.stash.get(ITEM_KEY, None)
