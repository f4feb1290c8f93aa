"""The baseline file: its typed layout, and reading and checking one.

`{"schema_version": 2, "test": nodeid, "entries": {<gpu>: {<vllm version>: entry}}}`, where an
entry is `{"created", "commit", "workload", "repeats", "summary", "spread"}`: the typed
`BaselineFile` / `BaselineRecord` below, whose generated schema `schemas/baseline.schema.json`
ships. Files of 0.1.0 (schema_version 1) are read through `schema_v1.upgrade_baseline`.

Every read and write is validated against that schema; an invalid or corrupt file is reported
(file, JSON pointer, schema message) with the cause first. Where files live and how they are
written (atomic, locked) is `baseline.BaselineStore`'s.
"""

from __future__ import annotations

import errno
import json
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from .codec import to_builtins
from .configuration import RunConfiguration
from .errors import BaselineError
from .latency import TimedPassResult
from .repeats import RepeatSpread
from .schema_v1 import V1, upgrade_baseline, v1_pointer
from .schemas import SchemaValidationError, validate_baseline
from .summary import ProfileSummary

BASELINE_SCHEMA_VERSION: Final = 2  # 2: the summaries' gpu_time_us -> op_time_us (schema_v1)

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
    # omit_defaults, the only field with a default), so they rewrite without additions.
    configuration: RunConfiguration | None = None
    # The timed (unprofiled) pass with every sample (issue 12); None in entries recorded before
    # it existed, or with timed_repeats=0: latency is then not compared.
    timed_pass: TimedPassResult | UnsetType = UNSET  # UNSET: left out of the file (0.1.0 entries re-encode without it)

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


def baseline_text(document: BaselineFile, path: Path) -> str:
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


def without_created(record: BaselineRecord) -> dict[str, Any]:
    data = json.loads(json.dumps(to_builtins(record)))
    return {k: v for k, v in data.items() if k != "created"}
