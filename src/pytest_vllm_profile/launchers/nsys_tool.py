"""The nsys executable: where it lives, which version it is, and whether its report importer can run.

Found in this order: the configured path (`--vllm-nsys` / ini `vllm_nsys`: the executable or
a folder holding it), PATH, then the folders installers use (`INSTALL_GLOBS`, newest version
first). `nsys --version` gives the version the command is built for (`NsysTool`).

nsys writes a `.qdstrm` stream and turns it into a `.nsys-rep` with its QdstrmImporter; when
the importer cannot load a library (Nsight Compute 2025.3.1's bundled nsys on a GPU image
without libdw.so.1), no report ever appears. `importer_problem` finds that out with `ldd`
before anything runs, so the error names the library instead of a missing report.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import LauncherError

# Where installers put nsys: Nsight Systems' own installer, the CUDA toolkit, Nsight Compute's
# bundled copy (seen on the H200 image: /opt/nvidia/nsight-compute/2025.3.1/host/target-linux-x64/nsys),
# Debian's nsight-systems package.
INSTALL_GLOBS: tuple[str, ...] = (
    "/opt/nvidia/nsight-systems/*/bin/nsys",
    "/usr/local/cuda*/bin/nsys",
    "/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys",
    "/usr/lib/nsight-systems/bin/nsys",
    "/usr/local/bin/nsys",
)

INSTALL_HINT = (
    "install Nsight Systems (https://developer.nvidia.com/nsight-systems, the CUDA toolkit's nsight-systems "
    "package, or on Debian: scripts/setup-nsys.sh) and put its bin folder on PATH or pass --vllm-nsys=PATH"
)

# The oldest nsys seen working with this plugin (Debian 12's nsight-systems 2022.4.2.1) and the
# first version seen taking the `--` separator before the application (2025.3.1 on the H200;
# 2022.4.2.1 rejects it: "option is ambiguous and matches 'capture-range-end', 'command-file', ...").
# The documented usage `nsys profile [options] <application> [args]` needs no separator, so
# versions in between get none.
OLDEST_KNOWN_VERSION = (2022, 4)
SEPARATOR_MIN_VERSION = (2025, 1)

_VERSION_RE = re.compile(r"(\d{4})\.(\d+)(?:\.(\d+))?(?:\.(\d+))?")


class NsysNotFoundError(LauncherError):
    """nsys was asked for but is not on PATH, at the configured path, or in an install folder."""


class NsysImporterError(LauncherError):
    """nsys' report importer cannot run here (a library it links against is missing)."""


@dataclass(frozen=True)
class NsysTool:
    """One nsys executable and its version (`nsys --version`)."""

    path: str
    version: tuple[int, ...]  # (2022, 4, 2, 1)
    version_text: str  # the whole `nsys --version` line

    @property
    def version_string(self) -> str:
        return ".".join(str(v) for v in self.version)

    @property
    def takes_separator(self) -> bool:
        """Whether `nsys profile/launch ... -- <command>` is accepted (see SEPARATOR_MIN_VERSION)."""
        return self.version[:2] >= SEPARATOR_MIN_VERSION


def _installed_candidates() -> list[str]:
    found: list[str] = []
    for pattern in INSTALL_GLOBS:
        # Newest version folder first: sort by the version numbers in the path, descending.
        matches = sorted(glob.glob(pattern), key=lambda p: [int(x) for x in re.findall(r"\d+", p)], reverse=True)
        found.extend(m for m in matches if os.access(m, os.X_OK) and Path(m).is_file())
    return found


def find_nsys(configured: str | os.PathLike[str] | None = None) -> str | None:
    """The nsys executable: `configured` (file or folder) when given, else PATH, else an install folder.

    A configured path that holds no executable nsys raises NsysNotFoundError (the user said where
    it is, so not finding it there is an error, not a fall-back).
    """
    if configured:
        path = Path(os.path.expanduser(str(configured)))
        exe = path / "nsys" if path.is_dir() else path
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe.absolute())
        raise NsysNotFoundError(
            f"--vllm-nsys {configured}: no executable nsys there ({exe} "
            f"{'is not executable' if exe.is_file() else 'does not exist'})"
        )
    on_path = shutil.which("nsys")
    if on_path:
        return on_path
    installed = _installed_candidates()
    return installed[0] if installed else None


def require_nsys(explicit: bool, configured: str | os.PathLike[str] | None = None) -> str:
    """The nsys executable, or NsysNotFoundError saying how to fix the setup.

    explicit: the user asked for nsys (`--vllm-profiler nsys`). When nsys was only picked by
    default the plugin skips with this message.
    """
    found = find_nsys(configured)
    if found:
        return found
    how = "you asked for --vllm-profiler nsys" if explicit else "nsys profiling was selected by default"
    raise NsysNotFoundError(
        f"nsys not on PATH nor in {', '.join(INSTALL_GLOBS)} ({how}): {INSTALL_HINT}, or choose --vllm-profiler "
        f"torch (PATH={os.environ.get('PATH', '')})"
    )


def parse_version(text: str) -> tuple[int, ...] | None:
    """(2022, 4, 2, 1) from "NVIDIA Nsight Systems version 2022.4.2.1-df9881f"; None if there is none."""
    match = _VERSION_RE.search(text)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def nsys_tool(path: str, timeout_s: float = 60.0, env: dict[str, str] | None = None) -> NsysTool:
    """Run `<path> --version` and return the tool; LauncherError when it fails or says no version."""
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise LauncherError(f"`{path} --version` did not answer within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise NsysNotFoundError(f"cannot run {path}: {exc}") from None
    text = (proc.stdout or proc.stderr or "").strip()
    version = parse_version(text)
    if proc.returncode != 0 or version is None:
        raise LauncherError(f"`{path} --version` gave no version (exit code {proc.returncode}): {text[-500:]!r}")
    return NsysTool(path=path, version=version, version_text=text.splitlines()[0] if text else "")


def importer_candidates(nsys_path: str) -> list[Path]:
    """QdstrmImporter executables of the install `nsys_path` belongs to (nearest first)."""
    real = Path(os.path.realpath(nsys_path)).parent
    found: list[Path] = []
    for root in (real, real.parent, real.parent.parent):
        for pattern in ("QdstrmImporter", "host*/QdstrmImporter", "*/QdstrmImporter"):
            for match in sorted(root.glob(pattern)):
                if match.is_file() and match not in found:
                    found.append(match)
    return found


def missing_libraries(executable: Path, env: dict[str, str] | None = None) -> list[str]:
    """Libraries `ldd` cannot find for `executable` ("libdw.so.1"); [] when ldd is absent or all load."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        proc = subprocess.run([ldd, str(executable)], capture_output=True, text=True, timeout=30, env=env)
    except (subprocess.TimeoutExpired, OSError):
        return []
    return [line.split("=>")[0].strip() for line in proc.stdout.splitlines() if "not found" in line]


def importer_problem(nsys_path: str, env: dict[str, str] | None = None) -> str | None:
    """Why nsys could not turn a capture into a report here, or None when its importer can load.

    env: the environment nsys will run with (its LD_LIBRARY_PATH decides what ldd finds).
    """
    for importer in importer_candidates(nsys_path):
        missing = missing_libraries(importer, env)
        if missing:
            return (
                f"nsys' report importer {importer} cannot load {', '.join(missing)} (ldd: not found), so no "
                f".nsys-rep can be written; install them (Debian: libdw1 libelf1) or put a folder holding them "
                f"on LD_LIBRARY_PATH (docs/nsys.md, 'nsys on a GPU runner')"
            )
    return None


# What nsys prints when its importer failed; found in the server log when a report never came.
IMPORTER_ERROR_PATTERNS = (
    re.compile(r"error while loading shared libraries: (\S+)"),
    re.compile(r"Importer error status: .*"),
    re.compile(r"QdstrmImporter.*(?:not found|failed|error).*", re.IGNORECASE),
)


def importer_error_in(text: str) -> str | None:
    """The first line of nsys output that says its importer failed, or None."""
    for pattern in IMPORTER_ERROR_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group(0).strip()
    return None
