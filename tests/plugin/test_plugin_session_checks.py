"""Session-wide checks (issue 15 items 9, 10): concurrent servers that distort each other's
timings are warned about; a second Ctrl-C while servers stop prints one line, no traceback.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_vllm_profile.plugin import session_checks
from pytest_vllm_profile.plugin.preflight import concurrency_warning
from pytest_vllm_profile.plugin.session_checks import stop_servers
from pytest_vllm_profile.settings import resolve_settings
from support.double_sessions import WORKLOAD_TEST


def _settings(**raw: object):  # type: ignore[no-untyped-def]
    return resolve_settings({"enabled": True, **raw}, Path("/r"), Path("/r"))


def test_n_2_cpu_servers_on_2_cores_warns_that_they_distort_each_other(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_checks, "available_cores", lambda: 2)
    monkeypatch.setattr(session_checks, "nvidia_smi_gpu_count", lambda: None)
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    result = pytester.runpytest("--vllm-profile", "-n", "2", "--co", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*PytestConfigWarning: pytest-vllm-profile: -n 2 runs up to 2 vLLM CPU servers at "
            "once on 2 CPU core(s)*concurrent servers distort each other's timings*use -n 1*"
        ]
    )
    monkeypatch.setattr(session_checks, "available_cores", lambda: 8)
    assert (
        "concurrent servers distort"
        not in pytester.runpytest("--vllm-profile", "-n", "2", "--co", "-p", "no:cacheprovider").stdout.str()
    )


def test_concurrency_rule_for_gpus_and_the_url_launcher() -> None:
    assert concurrency_warning(2, _settings(), gpu_count=2, cores=64) is None
    shared = concurrency_warning(2, _settings(workers_per_gpu="2"), gpu_count=1, cores=64)
    assert shared is not None and "2 servers share each GPU" in shared
    assert "-n 4 with 2 GPU(s)" in (concurrency_warning(4, _settings(), gpu_count=2, cores=64) or "")
    assert concurrency_warning(4, _settings(launcher="url", url="http://h:1"), gpu_count=None, cores=2) is None


class _PoolInterruptedOnce:
    """A pool double whose first stop_all is cut by Ctrl-C (after stopping one of two servers)."""

    def __init__(self) -> None:
        self.live = ["a", "b"]
        self.calls = 0

    def stop_all(self) -> None:
        self.calls += 1
        while self.live:
            self.live.pop(0)
            if self.calls == 1:
                raise KeyboardInterrupt


def test_stop_servers_double_goes_on_after_ctrl_c_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    pool = _PoolInterruptedOnce()
    stop_servers(pool)  # type: ignore[arg-type]
    assert pool.live == [] and pool.calls == 2
    assert capsys.readouterr().err.strip() == (
        "pytest-vllm-profile: interrupted again while stopping the vLLM servers: killed them (SIGKILL)"
    )


def test_second_ctrl_c_during_shutdown_prints_no_chained_traceback(tmp_path: Path) -> None:
    """A real pytest process: the body's Ctrl-C ends the session, and a launcher double's stop
    is interrupted by a second one while pytest_sessionfinish stops the servers."""
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent("""
        import pytest
        from pytest_vllm_profile.launchers.base import Launcher, RunningServer

        class InterruptedStopLauncherDouble(Launcher):
            def start(self):
                self.server = RunningServer(base_url="http://127.0.0.1:9", trace_dir=self.spec.trace_dir,
                                            log_path=None, profiler="torch", model_name=self.spec.model)
                return self.server

            def stop(self):
                raise KeyboardInterrupt  # the second Ctrl-C, during the graceful shutdown

        @pytest.hookimpl(tryfirst=True)
        def pytest_vllm_profile_make_launcher(config, spec, settings):
            return InterruptedStopLauncherDouble(spec)
    """)
    )
    (tmp_path / "test_interrupt.py").write_text(
        textwrap.dedent("""
        import pytest
        from pytest_vllm_profile.workload import Workload

        def test_boots_then_ctrl_c(vllm_server_pool):
            vllm_server_pool.get(Workload(model="m"))
            raise KeyboardInterrupt  # the first Ctrl-C
    """)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--vllm-profile", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert "KeyboardInterrupt" in output  # pytest's own one-line report of the first
    assert "During handling of the above exception" not in output and "Traceback (most recent call last)" not in output
    assert "interrupted again while stopping the vLLM servers: killed them (SIGKILL)" in output
