"""`BaselineStore`: the accepted profile of each test, one JSON file per test.

Layout: `<root>/<test file path without .py>/<test name, params sanitized>.json`, one
`baseline_file.BaselineFile` each (its entries keyed by GPU and vLLM version). GPU "cpu" and
vLLM "unknown" are the keys of CPU runs and unknown versions. Files of 0.1.0 (schema_version 1)
are read through `schema_v1.upgrade_baseline` and left as they are on disk until an entry is
recorded in them (then the whole file is written as version 2).

An invalid or corrupt file is reported and never overwritten. Writes are atomic (temp file in
the same folder + `os.replace`) and serialized by an `fcntl` lock (`locks.file_lock_path`), so
pytest-xdist workers can update different GPUs' entries of one file concurrently.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from msgspec import UNSET
from packaging.version import InvalidVersion, Version

from .baseline_file import (
    BASELINE_SCHEMA_VERSION,
    BaselineEntry,
    BaselineFile,
    BaselineRecord,
    baseline_text,
    entries_of,
    read_baseline_file,
    without_created,
)
from .configuration import RunConfiguration
from .errors import BaselineError
from .latency import TimedPassResult
from .locks import exclusive_lock, file_lock_path
from .repeats import RepeatSpread
from .summary import ProfileSummary

# The file format's names, where callers of the store have always found them.
__all__ = [
    "BASELINE_SCHEMA_VERSION",
    "BaselineEntry",
    "BaselineFile",
    "BaselineLookup",
    "BaselineRecord",
    "BaselineStore",
    "baseline_relpath",
    "entries_of",
    "gpu_key",
    "keys_for_summary",
    "older_vllm_versions",
    "read_baseline_file",
    "vllm_key",
]

CPU_GPU_KEY = "cpu"
UNKNOWN_VLLM_KEY = "unknown"

_SAFE = re.compile(r"[^A-Za-z0-9._\-\[\]=+,]")
_MAX_NAME = 120


def gpu_key(gpu: str | None) -> str:
    """The entry key of a GPU model ("cpu" when there is none)."""
    return gpu.strip() if gpu and gpu.strip() else CPU_GPU_KEY


def vllm_key(version: str | None) -> str:
    return version.strip() if version and version.strip() else UNKNOWN_VLLM_KEY


def keys_for_summary(summary: ProfileSummary) -> tuple[str, str]:
    """(gpu, vllm version) keys a summary would be stored under."""
    gpu = summary.device.name if summary.timing_domain == "gpu" else None
    return gpu_key(gpu), vllm_key(summary.runtime.vllm_version)


def _sanitize(part: str) -> str:
    """A file-name-safe form of `part`; a hash suffix keeps distinct names distinct."""
    clean = _SAFE.sub("_", part).strip(".") or "_"
    if clean != part or len(clean) > _MAX_NAME:
        digest = hashlib.sha1(part.encode()).hexdigest()[:8]
        clean = f"{clean[:_MAX_NAME]}-{digest}"
    return clean


def baseline_relpath(nodeid: str) -> Path:
    """`tests/test_x.py::TestA::test_b[p]` -> `tests/test_x/TestA.test_b[p].json`."""
    if not nodeid or not nodeid.strip():
        raise BaselineError("cannot name a baseline file for an empty test node id")
    file_part, sep, test_part = nodeid.partition("::")
    if not sep:
        test_part, file_part = file_part, ""
    if file_part.endswith(".py"):
        file_part = file_part[: -len(".py")]
    dirs = [_sanitize(p) for p in file_part.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    name = _sanitize(test_part.replace("::", ".")) if test_part else "_module"
    return Path(*dirs, name + ".json") if dirs else Path(name + ".json")


@dataclass
class BaselineLookup:
    """What the store holds for one test on one GPU / vLLM version, and why not when it does not.

    `entry` is the exact match. When there is none, `fallback` is the entry to compare with
    across vLLM versions (issue 13): the one `baseline_version` names, else the newest vLLM
    version on the same GPU OLDER than the running one (PEP 440 order, so a nightly
    0.32.1.dev12+gabc finds 0.32.0 and 0.32.1.dev11+g123, never 0.33.0); None if there is
    none. `message` says what exists.
    """

    path: Path
    entry: BaselineEntry | None
    fallback: BaselineEntry | None = None
    other_versions: list[str] = field(default_factory=list)  # vLLM versions stored for this GPU
    other_gpus: list[str] = field(default_factory=list)  # GPUs that have entries
    message: str = ""


def _version_sort_key(version: str) -> tuple[Any, ...]:
    """PEP 440 order ("0.10.1" after "0.9.2", "0.32.1.dev12+gabc" between 0.32.0 and 0.32.1);
    keys that are no version ("unknown") sort first, by their text."""
    try:
        return (1, Version(version), "")
    except InvalidVersion:
        return (0, None, version)


def older_vllm_versions(versions: list[str] | dict[str, Any], running: str) -> list[str]:
    """The stored versions older than `running`, oldest first ([] when `running` is no version)."""
    try:
        current = Version(running)
    except InvalidVersion:
        return []
    older = []
    for version in versions:
        try:
            if Version(version) < current:
                older.append(version)
        except InvalidVersion:
            continue
    return sorted(older, key=_version_sort_key)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class BaselineStore:
    """Baselines of every test under one folder (see the module docstring for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, nodeid: str) -> Path:
        return self.root / baseline_relpath(nodeid)

    def _read(self, nodeid: str) -> BaselineFile | None:
        path = self.path_for(nodeid)
        if not path.exists() and not _is_symlink_loop(path):  # a loop must not read as "no baseline"
            return None
        document = read_baseline_file(path)
        if document.test != nodeid:
            raise BaselineError(
                f"{path}: baseline file belongs to test {document.test!r}, not {nodeid!r} "
                "(two node ids map to one file name; rename one of the tests)"
            )
        return document

    def load(self, nodeid: str, gpu: str | None, vllm_version: str | None) -> BaselineEntry | None:
        """The entry for this test, GPU and vLLM version; None when the file or entry is absent."""
        document = self._read(nodeid)
        if document is None:
            return None
        record = document.entries.get(gpu_key(gpu), {}).get(vllm_key(vllm_version))
        if record is None:
            return None
        return BaselineEntry.of(gpu_key(gpu), vllm_key(vllm_version), record, path=self.path_for(nodeid), test=nodeid)

    def lookup(
        self, nodeid: str, gpu: str | None, vllm_version: str | None, baseline_version: str | None = None
    ) -> BaselineLookup:
        """Like `load`, but when nothing matches, say what does exist (and offer a fallback).

        `baseline_version` (`--vllm-baseline-version`): compare with that vLLM version's entry
        instead, even when the running version has one of its own.
        """
        path = self.path_for(nodeid)
        gpu_k, vllm_k = gpu_key(gpu), vllm_key(vllm_version)
        named = baseline_version.strip() if baseline_version and baseline_version.strip() else None
        if named == vllm_k:
            named = None
        document = self._read(nodeid)
        if document is None:
            return BaselineLookup(path, None, message=f"no baseline file {path} for {nodeid}")
        entries = document.entries
        versions = entries.get(gpu_k, {})
        if named is not None and versions:
            return self._named_version(path, nodeid, gpu_k, named, versions, sorted(entries))
        if vllm_k in versions:
            entry = BaselineEntry.of(gpu_k, vllm_k, versions[vllm_k], path=path, test=nodeid)
            return BaselineLookup(
                path,
                entry,
                other_versions=sorted(versions, key=_version_sort_key),
                other_gpus=sorted(entries),
                message="",
            )
        other_gpus = sorted(entries)
        if not versions:
            return BaselineLookup(
                path,
                None,
                other_gpus=other_gpus,
                message=(
                    f"{path}: no baseline for GPU {gpu_k!r}; the file has entries for GPU(s) "
                    f"{', '.join(other_gpus) or 'none'}"
                ),
            )
        ordered = sorted(versions, key=_version_sort_key)
        older = older_vllm_versions(versions, vllm_k)
        fallback = None
        if older:  # the newest older version: what the running one upgraded from
            fallback = BaselineEntry.of(gpu_k, older[-1], versions[older[-1]], path=path, test=nodeid)
        return BaselineLookup(
            path,
            None,
            fallback=fallback,
            other_versions=ordered,
            other_gpus=other_gpus,
            message=(
                f"{path}: no baseline for vLLM {vllm_k} on {gpu_k}; baselines exist for vLLM "
                f"{', '.join(ordered)} on this GPU"
                + ("" if older else f", none older than {vllm_k}")
                + f" (record one for {vllm_k} by updating the baseline)"
            ),
        )

    @staticmethod
    def _named_version(
        path: Path, nodeid: str, gpu_k: str, named: str, versions: dict[str, BaselineRecord], other_gpus: list[str]
    ) -> BaselineLookup:
        ordered = sorted(versions, key=_version_sort_key)
        if named not in versions:
            return BaselineLookup(
                path,
                None,
                other_versions=ordered,
                other_gpus=other_gpus,
                message=(
                    f"{path}: no baseline for vLLM {named} (--vllm-baseline-version) on {gpu_k}; "
                    f"baselines exist for vLLM {', '.join(ordered)} on this GPU"
                ),
            )
        fallback = BaselineEntry.of(gpu_k, named, versions[named], path=path, test=nodeid)
        return BaselineLookup(
            path,
            None,
            fallback=fallback,
            other_versions=ordered,
            other_gpus=other_gpus,
            message=f"comparing with the vLLM {named} baseline (--vllm-baseline-version)",
        )

    def entries(self, nodeid: str) -> list[BaselineEntry]:
        document = self._read(nodeid)
        return [] if document is None else entries_of(document, self.path_for(nodeid))

    def save(
        self,
        nodeid: str,
        gpu: str | None,
        vllm_version: str | None,
        summary: ProfileSummary,
        *,
        workload: dict[str, Any] | None = None,
        repeats: int = 1,
        spread: RepeatSpread | None = None,
        commit: str | None = None,
        created: str | None = None,
        configuration: RunConfiguration | None = None,
        timed_pass: TimedPassResult | None = None,
    ) -> bool:
        """Write (or replace) this test's entry for the GPU / vLLM version; True if content changed.

        `created` is ignored when deciding whether anything changed, so re-recording an identical
        profile leaves the file untouched.
        """
        path = self.path_for(nodeid)
        gpu_k, vllm_k = gpu_key(gpu), vllm_key(vllm_version)
        record = BaselineRecord(
            created=created or _now(),
            commit=commit,
            workload=dict(workload or {}),
            repeats=int(repeats),
            summary=summary,
            spread=spread,
            configuration=configuration,
            timed_pass=UNSET if timed_pass is None else timed_pass,
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BaselineError(f"{path.parent}: cannot create the baseline folder: {exc.strerror or exc}") from None
        with self._locked(path):
            document = self._read(nodeid)  # raises on invalid/corrupt: never overwritten silently
            if document is None:
                document = BaselineFile(schema_version=BASELINE_SCHEMA_VERSION, test=nodeid, entries={})
            old = document.entries.get(gpu_k, {}).get(vllm_k)
            # Compare through JSON so tuples/lists and float formatting do not count as changes.
            if old is not None and without_created(old) == without_created(record):
                return False
            document.entries.setdefault(gpu_k, {})[vllm_k] = record
            self._atomic_write(path, baseline_text(document, path))
        return True

    @staticmethod
    def _locked(path: Path) -> AbstractContextManager[None]:
        # In the host's lock folder: a lock file beside the baseline would be committed with it.
        try:
            lock = file_lock_path(path)
        except OSError as exc:
            raise BaselineError(f"{path}: cannot create the baseline lock folder: {exc.strerror or exc}") from None
        return exclusive_lock(lock, BaselineError, "baseline lock file")

    @staticmethod
    def _atomic_write(path: Path, text: str) -> None:
        # A symlinked baseline stays a link: the file it points at is replaced, not the link.
        path = Path(os.path.realpath(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise BaselineError(f"{path}: cannot write baseline file: {exc.strerror or exc}") from None


def _is_symlink_loop(path: Path) -> bool:
    try:
        path.stat()
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False
