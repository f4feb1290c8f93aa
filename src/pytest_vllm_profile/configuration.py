"""`RunConfiguration`: what produced a profile, on record in results, reports and baselines
(issue 15 item 2), and what differs between a baseline's and a candidate's.

Recorded per test: the server's command line and where each extra argument came from (the
marker's `server_args`, `--vllm-server-arg`, the `vllm_server_args` ini key), the environment
keys set for the server (values of secret keys redacted, `redact.py`), the vLLM / torch / CUDA
/ driver versions, the GPU or CPU model, and the plugin's version.

`workload_differences` compares the marker a baseline was recorded with against today's:
only keys both recorded are compared by value, and a key one side lacks counts as its
default (fields added to `Workload` later, like the timed pass or load shape, do not make
every 0.1.0 baseline "different").
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgspec

from . import __version__
from .redact import redact_args, redact_env
from .workload import Workload

# Marker arguments that change how a profile is judged or how often it is taken, not what it
# measures: a baseline recorded with other values is still the same workload.
NOT_WORKLOAD_IDENTITY = frozenset(
    {"repeats", "rel_tol", "abs_floor_us", "fail_on_drift", "expected_layers", "timed_repeats"}
)
# Inherited environment of the server that changes what it does (the rest is the user's shell).
RELEVANT_ENV_PREFIXES = ("VLLM_", "CUDA_", "NCCL_", "OMP_", "HF_", "TORCH_", "PYTORCH_")
# Configuration keys whose difference fails the comparison (the server ran with other flags);
# the others are told as notes.
FAILING_KEYS = ("server_args",)


class ServerArgs(msgspec.Struct, omit_defaults=True):
    """The extra `vllm serve` arguments of a test, by origin (all already redacted)."""

    marker: list[str] = msgspec.field(default_factory=list)  # @pytest.mark.vllm_workload(server_args=...)
    option: list[str] = msgspec.field(default_factory=list)  # --vllm-server-arg
    ini: list[str] = msgspec.field(default_factory=list)  # vllm_server_args in the ini file


class RunConfiguration(msgspec.Struct, omit_defaults=True):
    plugin_version: str | None = None
    launcher: str | None = None
    server_command: list[str] = msgspec.field(default_factory=list)  # as started (redacted); empty: not ours
    server_args: ServerArgs = msgspec.field(default_factory=ServerArgs)
    server_env: dict[str, str] = msgspec.field(default_factory=dict)  # keys set for the server (redacted)
    vllm_version: str | None = None
    torch_version: str | None = None
    cuda_version: str | None = None  # the CUDA torch was built with (None: a CPU build)
    driver_version: str | None = None  # NVIDIA driver
    hardware: str | None = None  # GPU model, or the CPU model name for CPU runs


def cpu_model_name() -> str | None:
    """This machine's CPU model ("Intel(R) Xeon(R) Platinum 8480+"), from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")) and ":" in line:
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def nvidia_driver_version() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0].strip() if out.strip() else None


_VERSIONS_SCRIPT = (
    "import json, torch; print(json.dumps({'torch': torch.__version__, 'cuda': getattr(torch.version, 'cuda', None)}))"
)


def python_versions(python: str | None, timeout_s: float = 120.0) -> dict[str, str | None]:
    """torch and its CUDA version in the server's interpreter (one `python -c`, about 2 s: torch's import)."""
    if not python:
        return {}
    try:
        out = subprocess.run([python, "-c", _VERSIONS_SCRIPT], capture_output=True, text=True, timeout=timeout_s)
        answer = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else {}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}
    return {k: (str(v) if v is not None else None) for k, v in answer.items()} if isinstance(answer, dict) else {}


def server_env_on_record(marker_env: Mapping[str, str], inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The marker's environment for the server plus the inherited keys that change what vLLM does."""
    inherited = os.environ if inherited is None else inherited
    env = {k: v for k, v in inherited.items() if k.startswith(RELEVANT_ENV_PREFIXES)}
    env.update(marker_env)
    return redact_env(dict(sorted(env.items())))


def server_args_on_record(marker: Sequence[str], session: Sequence[str], session_origin: str) -> ServerArgs:
    """`session_origin`: "option" (--vllm-server-arg given) or "ini" (the ini key)."""
    args = ServerArgs(marker=redact_args(list(marker)))
    if session_origin == "ini":
        args.ini = redact_args(list(session))
    else:
        args.option = redact_args(list(session))
    return args


def workload_on_record(workload: Workload) -> dict[str, Any]:
    """`workload.to_dict()` as stored in baselines and results: secret env values and server flags redacted."""
    data = workload.to_dict()
    data["env"] = redact_env(data["env"])
    data["server_args"] = redact_args(data["server_args"])
    return data


def _defaults() -> dict[str, Any]:
    probe = Workload(model="-")
    return {f.name: getattr(probe, f.name) for f in fields(Workload)}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))  # tuples -> lists, as in to_dict()


def workload_differences(baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[str]:
    """`name: baseline -> candidate` for each workload argument that changed (absent = default);
    nothing when either side recorded no workload at all."""
    if not baseline or not candidate:  # nothing recorded (a baseline saved without its workload)
        return []
    defaults = {k: _plain(v) for k, v in _defaults().items() if k != "model"}  # model has no default
    defaults["env"] = {}
    changes = []
    for name in sorted((set(baseline) | set(candidate)) - NOT_WORKLOAD_IDENTITY):
        if name not in defaults:  # the model, or a field this version does not know: only when both have it
            if name in baseline and name in candidate and _plain(baseline[name]) != _plain(candidate[name]):
                changes.append(f"{name}: {baseline[name]!r} -> {candidate[name]!r}")
            continue
        old = _plain(baseline.get(name, defaults[name]))
        new = _plain(candidate.get(name, defaults[name]))
        if old != new:
            changes.append(f"{name}: {old!r} -> {new!r}")
    return changes


def configuration_differences(
    baseline: RunConfiguration | None, candidate: RunConfiguration | None
) -> tuple[list[str], list[str]]:
    """(failing, noted) differences, each `what: baseline -> candidate`. Nothing when either side
    has no record (baselines of 0.1.0) or a field is unknown on one side."""
    if baseline is None or candidate is None:
        return [], []
    failing: list[str] = []
    noted: list[str] = []
    base_args = baseline.server_args.option + baseline.server_args.ini
    cand_args = candidate.server_args.option + candidate.server_args.ini
    if base_args != cand_args:
        failing.append(f"server arguments from --vllm-server-arg / vllm_server_args: {base_args} -> {cand_args}")
    for name in ("hardware", "vllm_version", "torch_version", "cuda_version", "driver_version", "launcher"):
        old, new = getattr(baseline, name), getattr(candidate, name)
        if old is not None and new is not None and old != new:
            noted.append(f"{name.replace('_', ' ')}: {old} -> {new}")
    if baseline.server_env and candidate.server_env and baseline.server_env != candidate.server_env:
        keys = sorted(
            k
            for k in set(baseline.server_env) | set(candidate.server_env)
            if baseline.server_env.get(k) != candidate.server_env.get(k)
        )
        noted.append(f"server environment differs in {', '.join(keys)}")
    return failing, noted


def plugin_version() -> str:
    return __version__
