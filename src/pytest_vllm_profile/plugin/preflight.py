"""Checks made before any server boots (issue 15 item 4, 9): what would otherwise fail only
after a boot (11.6 s for a missing model folder on CPU, boot + captures for a corrupt baseline)
or distort every timing without a word (`-n 2` on a 2-core machine).

* per test, after collection (`item_problems`): the baseline file the test will read is valid
  (the store's own validation, `BaselineStore.entries`); at the `vllm_profile` fixture's setup
  (`model_problem`): the model folder exists when the model is a path (process launcher: the
  server reads it on this machine). The folder is checked then, not at collection, because a
  test's own fixtures may write it first: tests/gpu's session fixture writes its model folder,
  and a collection-time check failed both GPU tests on a fresh H200 machine (2026-12-02).
  Either problem fails that test at setup, before its server is asked for;
* per session, on the controller (`session_problems`, `session_warnings`): the folders the
  session writes are writable (usage error, exit 4); no ini file and a rootdir that is not the
  working folder (warning: baselines would be written there); more concurrent servers than the
  machine runs without distorting each other (warning).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BaselineError
from ..settings import SessionSettings
from ..workload import Workload

# A CPU vLLM server keeps about two cores busy (its API server and its engine core process):
# `-n 2` on a 2-core machine made two servers compete for them, with no gain (issue 15).
CORES_PER_CPU_SERVER = 2


def model_is_path(model: str) -> bool:
    """A model argument naming a folder ("/models/x", "./m", "~/m"), not a hub id ("Qwen/Qwen3-8B")."""
    return model.startswith(("/", "./", "../", "~")) or model in (".", "..")


def model_problem(workload: Workload, settings: SessionSettings) -> str | None:
    """Why the server could not load the marker's model, when that is knowable here."""
    if settings.launcher != "process" or not model_is_path(workload.model):
        return None
    path = Path(os.path.expanduser(workload.model))
    if not path.exists():
        return (
            f"model folder {workload.model} does not exist (vllm_workload model=; resolved from "
            f"{Path.cwd()}); no server was started"
        )
    if path.is_dir() and not (path / "config.json").is_file():
        return (
            f"model folder {workload.model} has no config.json: not a Hugging Face model folder; no server was started"
        )
    return None


def baseline_problem(nodeid: str, settings: SessionSettings) -> str | None:
    """The store's validation error of the baseline file this test reads (or rewrites), if any."""
    from ..baseline import BaselineStore  # lazy: jsonschema is not loaded by plain pytest runs

    try:
        BaselineStore(settings.baseline_dir).entries(nodeid)
    except BaselineError as exc:
        return f"BaselineError: {exc}; no server was started"
    return None


def item_problems(nodeid: str, settings: SessionSettings) -> list[str]:
    """What can be known about a test right after collection (the model folder: `model_problem`, later)."""
    problem = baseline_problem(nodeid, settings)
    return [problem] if problem else []


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def unwritable(path: Path) -> str | None:
    """Why files cannot be written at `path` (a folder, made if missing), or None."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def session_problems(settings: SessionSettings) -> list[str]:
    """Folders this session will write into that it cannot write: each names its option."""
    targets: list[tuple[str, Path | None]] = [
        ("--vllm-trace-root", settings.trace_root),
        ("--vllm-results", settings.results_path.parent if settings.results_path else None),
        ("--vllm-report", settings.report_dir),
    ]
    if settings.update_baselines:
        targets.append(("--baseline-dir", settings.baseline_dir))
    problems = []
    for option, folder in targets:
        why = unwritable(folder) if folder is not None else None
        if why is not None:
            problems.append(f"{option} {folder}: {why}")
    return problems


def rootdir_warning(inipath: Path | None, rootdir: Path, cwd: Path, settings: SessionSettings) -> str | None:
    """No ini file pins the rootdir and pytest put it somewhere other than the working folder."""
    if inipath is not None or rootdir.resolve() == cwd.resolve():
        return None
    return (
        f"no pytest ini file (pytest.ini, pyproject.toml [tool.pytest.ini_options], tox.ini, setup.cfg) "
        f"was found, and pytest chose {rootdir} as rootdir, not the working folder {cwd}: baselines are "
        f"read from and written to {settings.baseline_dir}, session folders to {settings.trace_root}. "
        "Add an ini file to your project's root to pin it"
    )


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def concurrency_warning(workers: int, settings: SessionSettings, gpu_count: int | None, cores: int) -> str | None:
    """More servers at once than the machine runs without distorting each other's timings."""
    if workers < 2 or settings.launcher == "url":
        return None
    servers = workers * settings.max_servers
    if not gpu_count:  # CPU servers
        fit = max(1, cores // CORES_PER_CPU_SERVER)
        if servers <= fit:
            return None
        return (
            f"-n {workers} runs up to {servers} vLLM CPU servers at once on {cores} CPU core(s) (room for "
            f"{fit}: each keeps about {CORES_PER_CPU_SERVER} cores busy): concurrent servers distort each "
            f"other's timings, so comparisons with baselines recorded alone fail or pass by chance; "
            f"use -n {fit} or fewer"
        )
    if settings.workers_per_gpu > 1:
        return (
            f"--vllm-workers-per-gpu {settings.workers_per_gpu}: {settings.workers_per_gpu} servers share each "
            "GPU, and concurrent servers distort each other's timings (kernels interleave on the GPU); "
            "use it for functional checks, not for timing baselines"
        )
    if workers > gpu_count:
        return (
            f"-n {workers} with {gpu_count} GPU(s): workers beyond the GPU count share GPUs, and concurrent "
            f"servers distort each other's timings; use -n {gpu_count} or fewer"
        )
    return None
