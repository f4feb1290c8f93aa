"""`BaselineStore`: the accepted profile of each test, one JSON file per test.

Layout: `<root>/<test file path without .py>/<test name, params sanitized>.json`, holding
`{"schema_version": 2, "test": nodeid, "entries": {<gpu>: {<vllm version>: entry}}}`, where an
entry is `{"created", "commit", "workload", "repeats", "summary", "spread"}`: the typed
`BaselineFile` / `BaselineRecord` below, whose generated schema `schemas/baseline.schema.json`
ships. GPU "cpu" and vLLM "unknown" are the keys of CPU runs and unknown versions. Files of
0.1.0 (schema_version 1) are read through `schema_v1.upgrade_baseline` and left as they are on
disk until an entry is recorded in them (then the whole file is written as version 2).

Every read and write is validated against that schema; an invalid or corrupt file is reported
(file, JSON pointer, schema message) and never overwritten. Writes are atomic (temp file in
the same folder + `os.replace`) and serialized by an `fcntl` lock (`locks.file_lock_path`), so
pytest-xdist workers can update different GPUs' entries of one file concurrently.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType
from packaging.version import InvalidVersion, Version

from .codec import to_builtins
from .configuration import RunConfiguration
from .errors import BaselineError
from .latency import TimedPassResult
from .locks import exclusive_lock, file_lock_path
from .repeats import RepeatSpread
from .schema_v1 import V1, upgrade_baseline, v1_pointer
from .schemas import SchemaValidationError, validate_baseline
from .summary import ProfileSummary

BASELINE_SCHEMA_VERSION: Final = 2  # 2: the summaries' gpu_time_us -> op_time_us (schema_v1)
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


NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class BaselineRecord(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One entry as stored in a baseline file."""

    created: Annotated[str, msgspec.Meta(min_length=1, description="ISO 8601 UTC time the entry was written")]
    commit: Annotated[str | None, msgspec.Meta(description="VCS commit of the code under test, when known")]
    workload: Annotated[dict[str, Any], msgspec.Meta(description="Workload.to_dict() of the test's marker")]
    repeats: Annotated[int, msgspec.Meta(ge=1)]
    summary: ProfileSummary
    spread: RepeatSpread | None
    # What produced the profile (issue 15); absent in baselines of 0.1.0 (and left out when None:
    # omit_defaults, the only field with a default), so they rewrite identically.
    configuration: RunConfiguration | None = None
    # The timed (unprofiled) pass with every sample (issue 12); None in entries recorded before
    # it existed, or with timed_repeats=0: latency is then not compared.
    timed_pass: TimedPassResult | UnsetType = UNSET  # UNSET: left out of the file (0.1.0 entries re-encode as read)

    @property
    def timed(self) -> TimedPassResult | None:
        """The entry's timed pass; None when it has none (recorded before timed passes, or timed_repeats=0)."""
        return None if isinstance(self.timed_pass, UnsetType) else self.timed_pass


class BaselineFile(msgspec.Struct, forbid_unknown_fields=True):
    """One file per test: the accepted ProfileSummary (median of repeats) per GPU model and vLLM version."""

    schema_version: Literal[2]
    test: Annotated[str, msgspec.Meta(min_length=1, description="the pytest node id")]
    # GPU model name ('cpu' for CPU runs) -> vLLM version ('unknown' when not known) -> entry
    entries: dict[NonEmpty, dict[NonEmpty, BaselineRecord]]

    @classmethod
    def upgrade_builtins(cls, data: Any) -> Any:
        """The JSON of a baseline file of 0.1.0 (schema_version 1) in this layout (`codec.from_builtins`)."""
        return upgrade_baseline(data)


class BaselineEntry(BaselineRecord, kw_only=True):
    """One stored baseline: the median summary of `repeats` profiles on one GPU / vLLM version."""

    gpu: str
    vllm_version: str
    path: Path | None = None
    test: str | None = None

    def record(self) -> BaselineRecord:
        """The entry's stored form inside a baseline file."""
        return BaselineRecord(**{name: getattr(self, name) for name in BaselineRecord.__struct_fields__})

    @classmethod
    def of(
        cls, gpu: str, vllm_version: str, record: BaselineRecord, path: Path | None = None, test: str | None = None
    ) -> BaselineEntry:
        fields = {name: getattr(record, name) for name in BaselineRecord.__struct_fields__}
        return cls(gpu=gpu, vllm_version=vllm_version, path=path, test=test, **fields)


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


# Said about a broken baseline file: the plugin never overwrites one it cannot read.
_FIX_OR_DELETE = "fix or delete it, it is never overwritten automatically"


def read_baseline_file(path: Path) -> BaselineFile:
    """Parse and validate one baseline file; `BaselineError` naming the file (and the byte or
    JSON pointer) otherwise.

    The fast path is msgspec's typed decode, which checks what the generated schema checks and
    also refuses NaN/Infinity (a 29.6 MB file: ~0.3 s against ~30 s through jsonschema,
    benchmarks/RESULTS.md); only a file it refuses goes through the slow path that names the cause.
    """
    raw = _read_regular_file(path)
    try:
        # msgspec skips an unknown key without checking its UTF-8: check the whole file (~20 ms / 30 MB).
        raw.decode("utf-8")
        return msgspec.json.decode(raw, type=BaselineFile)
    except UnicodeDecodeError:
        fast_error = ""
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        fast_error = str(exc)
        if _schema_version(raw) == V1:  # a 0.1.0 file: its JSON upgraded, then the typed decode
            try:
                return msgspec.convert(upgrade_baseline(msgspec.json.decode(raw)), BaselineFile)
            except msgspec.ValidationError as v1_exc:
                fast_error = str(v1_exc)
    raise BaselineError(f"{path}: {_why_not_a_baseline(raw, path, fast_error)}; {_FIX_OR_DELETE}")


class _Versioned(msgspec.Struct):
    schema_version: Any = None


def _schema_version(raw: bytes) -> Any:
    """The file's top-level schema_version (None when it is no JSON object)."""
    try:
        return msgspec.json.decode(raw, type=_Versioned).schema_version
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _read_regular_file(path: Path) -> bytes:
    """The bytes of `path`, refusing what is not a regular file (a FIFO would block the read)."""
    try:
        info = path.stat()  # follows symlinks: a loop is ELOOP here, not "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BaselineError(
                f"{path}: baseline file is a symlink loop ({exc.strerror}); point the link at a file or delete it"
            ) from None
        raise BaselineError(f"{path}: cannot read baseline file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise BaselineError(f"{path}: baseline file is a {kind}, not a regular file; {_FIX_OR_DELETE}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read baseline file: {exc.strerror or exc}") from None


_FILE_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _why_not_a_baseline(raw: bytes, path: Path, fast_error: str) -> str:
    """The cause of a refused file, first the encoding, then the JSON, then the schema."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"baseline file is not valid UTF-8 at byte {exc.start} (0x{raw[exc.start]:02x}: {exc.reason})"
    try:
        # json accepts NaN/Infinity literals (Python's json writes them); a baseline must not hold them.
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return f"baseline file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    except ValueError as exc:
        where = _first_constant(text, str(exc))
        return f"baseline file holds the non-finite number {exc} ({where}); baselines hold finite numbers only"
    if isinstance(document, dict) and document.get("schema_version") == V1:
        document = upgrade_baseline(document)  # checked in the current layout, named in the file's (v1_pointer)
    try:
        validate_baseline(document, str(path))
    except SchemaValidationError as exc:
        pointer = v1_pointer(exc.pointer) if _schema_version(raw) == V1 else exc.pointer
        pointer = pointer or "/"
        return f"baseline file does not match baseline.schema.json at JSON pointer '{pointer}': {exc.problem}"
    # What the schema cannot say: a number too large for a float (1e400 reads as Infinity).
    return f"baseline file is not a valid BaselineFile: {fast_error}"


def _first_constant(text: str, constant: str) -> str:
    match = re.search(rf"(?<![\w\\\"]){re.escape(constant)}(?![\w\"])", text)
    if match is None:
        return "position unknown"
    line = text.count("\n", 0, match.start()) + 1
    return f"line {line}, column {match.start() - (text.rfind(chr(10), 0, match.start()) + 1) + 1}"


def _check_schema(document: Any, path: Path, what: str, advice: str = "") -> None:
    """Raise BaselineError "<path>: <what> does not match baseline.schema.json at ...<advice>"."""
    try:
        validate_baseline(document, str(path))
    except SchemaValidationError as exc:
        raise BaselineError(
            f"{path}: {what} does not match baseline.schema.json at JSON pointer "
            f"'{exc.pointer or '/'}': {exc.problem}{advice}"
        ) from None


def entries_of(document: BaselineFile, path: Path | None = None) -> list[BaselineEntry]:
    """Every entry of a parsed baseline file, GPU then vLLM version order."""
    return [
        BaselineEntry.of(gpu, version, record, path=path, test=document.test)
        for gpu, versions in sorted(document.entries.items())
        for version, record in sorted(versions.items())
    ]


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
            if old is not None and _without_created(old) == _without_created(record):
                return False
            document.entries.setdefault(gpu_k, {})[vllm_k] = record
            self._atomic_write(path, _baseline_text(document, path))
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


def _baseline_text(document: BaselineFile, path: Path) -> str:
    """The JSON text to write; BaselineError when the document is not a valid baseline (never written).

    Checked by a msgspec round trip (what the schema checks, in ~0.2 s for 29.6 MB); the schema
    runs only to name the JSON pointer of a refused document.
    """
    data = to_builtins(document)
    try:
        msgspec.convert(data, BaselineFile)
    except msgspec.ValidationError as exc:
        _check_schema(data, path, "refusing to write a baseline that")
        raise BaselineError(f"{path}: refusing to write a baseline that is not a valid BaselineFile: {exc}") from None
    try:
        return json.dumps(data, indent=1, sort_keys=False, allow_nan=False) + "\n"
    except ValueError:
        raise BaselineError(
            f"{path}: refusing to write a baseline that holds NaN or Infinity (a summary built on damaged data?)"
        ) from None


def _without_created(record: BaselineRecord) -> dict[str, Any]:
    data = json.loads(json.dumps(to_builtins(record)))
    return {k: v for k, v in data.items() if k != "created"}
