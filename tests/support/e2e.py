"""Helpers of the end-to-end layer (tests/e2e): the inner pytest project that runs the whole
plugin against a real vLLM CPU server (`run_inner_session`), and the process scan that proves
no server outlives its run.

The inner session is a separate `pytest` process (pytester.runpytest_subprocess), so the
plugin is loaded from its entry point and the servers are started exactly as a user's run
starts them. Its conftest only OBSERVES: it times `ProcessLauncher.start` (boot) and
`ProfileCapture.run` (one capture) and appends one JSON line per event to $E2E_TIMINGS_FILE;
at boot it also notes the server's process group and what the leak scan sees of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.cpu_vllm import TINY_SERVED_NAME, TINY_SERVER_ARGS, TINY_SERVER_ENV
from support.paths import TESTS_DIR

# Seed workload of the issue: 10 tokens, 4 decoder layers, eager so the CPU server boots fast.
MAX_TOKENS = 10
LAYERS = 4
PROMPT = "What is the capital of France?"
# E2E_RUN_TAG marks every process of the servers these tests start (children inherit the
# environment), so the leak scan never confuses them with other sessions' vLLM servers.
TAG_VAR = "E2E_RUN_TAG"

INNER_TEST_NAME = "test_seed_workload"
INNER_TEST = """
import pytest


@pytest.mark.vllm_workload(
    model={model!r},
    served_model_name={served!r},
    max_tokens={max_tokens},
    prompts=[{prompt!r}],
    server_args={server_args!r},
    env={server_env!r},
)
def {name}(vllm_profile):
    assert vllm_profile.token_steps == {max_tokens}
    assert vllm_profile.layer_count == {layers}
    assert vllm_profile.summary.timing_domain == "cpu"
"""

INNER_CONFTEST = """
import json
import os
import sys
import time

from pytest_vllm_profile.capture import ProfileCapture
from pytest_vllm_profile.launchers.process import ProcessLauncher, process_group_members

_TIMINGS = os.environ["E2E_TIMINGS_FILE"]
sys.path.insert(0, os.environ["E2E_SUPPORT_DIR"])
from support.e2e import leftover_server_processes  # noqa: E402


def _note(**event):
    with open(_TIMINGS, "a") as fh:
        fh.write(json.dumps(event) + "\\n")


_start = ProcessLauncher.start
_run = ProfileCapture.run


def _timed_start(self):
    t0 = time.monotonic()
    try:
        server = _start(self)
    except BaseException:
        _note(event="boot", seconds=round(time.monotonic() - t0, 1), log=str(self.log_path), ok=False,
              pgid=self.pgid)
        raise
    # While the server runs: its process group, and what the outer test's leak scan sees, so
    # the outer test knows the scan would catch exactly these processes if they outlived the run.
    _note(event="boot", seconds=round(time.monotonic() - t0, 1), log=str(self.log_path), ok=True,
          pgid=self.pgid, group_pids=sorted(process_group_members(self.pgid)),
          scan=leftover_server_processes(os.environ["E2E_MODEL"], os.environ["E2E_TAG"]))
    return server


def _timed_run(self):
    t0 = time.monotonic()
    result = _run(self)
    _note(event="capture", seconds=round(time.monotonic() - t0, 1),
          stop_profile_s=round(result.stop_profile_s, 1), wait_s=round(result.wait_s, 1))
    return result


ProcessLauncher.start = _timed_start
ProfileCapture.run = _timed_run
"""


def run_inner_session(
    pytester: pytest.Pytester, test_file: str, python: str, results: Path, *extra: str, timeout_s: float
) -> pytest.RunResult:
    """One inner `pytest --vllm-profile --vllm-launcher process` session of the pytester project, in
    a subprocess (the plugin loaded from its entry point, servers started as a user's run starts
    them): baselines in <project>/baselines, the results file at `results`, `extra` last."""
    root = Path(pytester.path)
    # --rootdir: pytest also looks for the rootdir along existing paths given as option
    # VALUES (here the interpreter under the checkout), which would rename the test.
    return pytester.runpytest_subprocess(
        test_file,
        f"--rootdir={root}",
        "-p",
        "no:cacheprovider",
        "--vllm-profile",
        "--vllm-launcher",
        "process",
        f"--vllm-python={python}",
        f"--baseline-dir={root / 'baselines'}",
        f"--vllm-results={results}",
        *extra,
        timeout=timeout_s,
    )


def observe_inner_session(monkeypatch: pytest.MonkeyPatch, timings_file: Path, model: Path, tag: str) -> None:
    """Environment of `INNER_CONFTEST` for the next inner session: where it appends its timings,
    where it imports the leak scan from, and the model and run tag the scan looks for."""
    for name, value in (
        ("E2E_TIMINGS_FILE", str(timings_file)),
        ("E2E_SUPPORT_DIR", str(TESTS_DIR)),
        ("E2E_MODEL", str(model)),
        ("E2E_TAG", tag),
    ):
        monkeypatch.setenv(name, value)


def inner_test_source(model: Path, tag: str, server_args: tuple[str, ...] = TINY_SERVER_ARGS) -> str:
    return INNER_TEST.format(
        model=str(model),
        served=TINY_SERVED_NAME,
        max_tokens=MAX_TOKENS,
        prompt=PROMPT,
        server_args=list(server_args),
        server_env={**TINY_SERVER_ENV, TAG_VAR: tag},
        name=INNER_TEST_NAME,
        layers=LAYERS,
    )


@dataclass
class Timings:
    boots_s: list[float]
    captures_s: list[float]
    stop_profile_s: list[float]
    booted: list[dict[str, Any]]  # boot events of servers that became healthy (with their pids)
    pgids: list[int]  # process groups of every server started, healthy or not

    @classmethod
    def read(cls, path: Path) -> Timings:
        events: list[dict[str, Any]] = []
        if path.is_file():
            events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return cls(
            boots_s=[e["seconds"] for e in events if e["event"] == "boot"],
            captures_s=[e["seconds"] for e in events if e["event"] == "capture"],
            stop_profile_s=[e["stop_profile_s"] for e in events if e["event"] == "capture"],
            booted=[e for e in events if e["event"] == "boot" and e["ok"]],
            pgids=[e["pgid"] for e in events if e["event"] == "boot" and e.get("pgid")],
        )

    def line(self) -> str:
        return f"boot {self.boots_s} s, captures {self.captures_s} s (of which /stop_profile {self.stop_profile_s} s)"


def _read_proc(pid_dir: Path, name: str) -> bytes:
    try:
        return (pid_dir / name).read_bytes()
    except OSError:  # gone meanwhile, or a kernel thread
        return b""


def leftover_server_processes(model: Path | str, tag: str, pgids: Iterable[int] = ()) -> list[str]:
    """Live processes of the servers these tests started, as "pid cmdline": `vllm.entrypoints`
    with the tiny model on the command line, the run tag in the environment, or membership of
    one of the servers' process groups `pgids`. The last is what finds the engine core and
    worker: vLLM retitles them ("VLLM::EngineCore"), and setproctitle overwrites the memory
    that /proc/PID/cmdline and /proc/PID/environ show. Zombies do not count."""
    model_b, tag_b = str(model).encode(), f"{TAG_VAR}={tag}".encode()
    groups = set(pgids)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read_proc(entry, "stat")
        fields = stat[stat.rfind(b")") + 2 :].split()  # state ppid pgrp ...
        if len(fields) < 3 or fields[0] == b"Z":
            continue
        cmdline = _read_proc(entry, "cmdline").replace(b"\0", b" ")
        by_cmdline = b"vllm.entrypoints" in cmdline and model_b in cmdline
        by_env = tag_b in _read_proc(entry, "environ").split(b"\0")
        if by_cmdline or by_env or int(fields[2]) in groups:
            found.append(f"{entry.name} {cmdline.decode(errors='replace')[:200]}")
    return found
