"""Session-wide checks at configure time (plugin/preflight.py has the rules), and the quiet
stop of the servers at the session's end.

A second Ctrl-C while the servers shut down gracefully (SIGINT, up to the launcher's stop
timeout) interrupted `stop_all` in pytest_sessionfinish, outside pytest's own handling of
KeyboardInterrupt, and Python printed the raw chained traceback (issue 15 item 10). The
launcher already kills its process group when interrupted; `stop_servers` then kills the
rest and says so in one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ..pool import ServerPool, nvidia_smi_gpu_count
from ..settings import SessionSettings
from .preflight import available_cores, concurrency_warning, rootdir_warning, session_problems


def xdist_workers(config: pytest.Config) -> int:
    """-n N of pytest-xdist (resolved from "auto" by xdist before plugins configure), else 0."""
    value = getattr(config.option, "numprocesses", None)
    dist = getattr(config.option, "dist", "no")
    return value if isinstance(value, int) and dist != "no" else 0


def check_session(config: pytest.Config, settings: SessionSettings) -> None:
    """Unwritable folders: usage error (exit 4); rootdir and concurrency: warnings."""
    problems = session_problems(settings)
    if problems:
        raise pytest.UsageError(
            "pytest-vllm-profile cannot write where this session writes:\n  " + "\n  ".join(problems)
        )
    notes = [rootdir_warning(config.inipath, Path(config.rootpath), Path.cwd(), settings)]
    workers = xdist_workers(config)
    if workers > 1:
        gpus = nvidia_smi_gpu_count() if settings.launcher != "url" else None
        notes.append(concurrency_warning(workers, settings, gpus, available_cores()))
    for note in notes:
        if note is not None:
            config.issue_config_time_warning(pytest.PytestConfigWarning(f"pytest-vllm-profile: {note}"), stacklevel=2)


def stop_servers(pool: ServerPool) -> None:
    """`pool.stop_all()`; a Ctrl-C meanwhile kills what is left, with one line instead of a traceback."""
    interrupted = False
    while True:
        try:
            pool.stop_all()
            break
        except KeyboardInterrupt:
            interrupted = True  # the interrupted launcher killed its group; go on with the rest
    if interrupted:
        print(
            "\npytest-vllm-profile: interrupted again while stopping the vLLM servers: killed them (SIGKILL)",
            file=sys.stderr,
        )
