"""JSON at the edges: the one place typed model objects become JSON text and back.

Every file (summary, results, baseline, history), the CLI's `--json` output and the report
an xdist worker sends go through these functions; everything inside works on the typed
`msgspec.Struct` objects. Encoding goes through `json.dumps` of `msgspec.to_builtins(...)` so
the text is byte-for-byte what 0.1.0 wrote (msgspec's own encoder writes floats as
`0.00001` / `1e20` and UTF-8 where 0.1.0 wrote `1e-05` / `1e+20` and `\\u00b5` escapes).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec

from .errors import VllmProfileError

T = TypeVar("T")


class ModelDecodeError(VllmProfileError):
    """A JSON document does not have the layout of the model type it was read as."""


def to_builtins(obj: Any) -> Any:
    """Dicts, lists, strings and numbers of a model object (what `json` writes)."""
    return msgspec.to_builtins(obj)


def from_builtins(data: Any, kind: type[T], where: str = "") -> T:
    """`data` (parsed JSON) as a `kind`; `ModelDecodeError` naming `where` and the field otherwise.

    Unknown fields are ignored (written by a newer minor version); types, literals and bounds
    are checked ("Invalid enum value 'sideways' - at `$.steps[0].kind`"). A model type with an
    `upgrade_builtins(data)` classmethod (the versioned files: summary, baseline, results) gets
    an older layout upgraded first (`schema_v1`), so every reader of a 0.1.0 file sees the current one.
    """
    upgrade = getattr(kind, "upgrade_builtins", None)
    if upgrade is not None:
        data = upgrade(data)
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        prefix = f"{where}: " if where else ""
        raise ModelDecodeError(f"{prefix}not a valid {getattr(kind, '__name__', kind)}: {exc}") from None


def encode_json(obj: Any, indent: int | None = 1, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """JSON text of a model object (or of builtins holding model objects)."""
    return json.dumps(to_builtins(obj), indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii)


def decode_json(text: str | bytes, kind: type[T], where: str = "") -> T:
    """Parse JSON text as a `kind`; `ModelDecodeError` naming `where` for bad JSON or a bad layout."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        prefix = f"{where}: " if where else ""
        raise ModelDecodeError(f"{prefix}not valid JSON: {exc}") from None
    return from_builtins(data, kind, where)
