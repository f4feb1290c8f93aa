"""The shipped JSON Schemas (draft 2020-12) and validation against them.

Both are generated from the typed model (`schemas.generate`): `summary.schema.json` describes
a `ProfileSummary`, `baseline.schema.json` a `baseline_file.BaselineFile` (the summary's types
inline). Errors name the file, the JSON pointer of the
offending value and the schema's message, so a person can fix the file by hand.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from ..errors import VllmProfileError

SUMMARY_SCHEMA = "summary.schema.json"
BASELINE_SCHEMA = "baseline.schema.json"


class SchemaValidationError(VllmProfileError):
    """A JSON document does not match its shipped schema."""

    def __init__(self, where: str, pointer: str, problem: str) -> None:
        self.where = where
        self.pointer = pointer
        self.problem = problem
        super().__init__(f"{where}: invalid at JSON pointer '{pointer or '/'}': {problem}")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema shipped in the package (`name` as in SUMMARY_SCHEMA)."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator(name: str) -> Draft202012Validator:
    # Register every shipped schema under its $id so any $ref between them resolves offline,
    # without any network retrieval.
    resources_ = []
    for other in (SUMMARY_SCHEMA, BASELINE_SCHEMA):
        schema = load_schema(other)
        resources_.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources_)
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def json_pointer(path: Any) -> str:
    """RFC 6901 pointer of a jsonschema error path (deque of keys/indices)."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else ""


def validate(document: Any, schema_name: str, where: str) -> None:
    """Raise `SchemaValidationError` (file, pointer, message) when `document` does not match."""
    validator = _validator(schema_name)
    error: ValidationError | None = best_match(validator.iter_errors(document))
    if error is not None:
        raise SchemaValidationError(where, json_pointer(error.absolute_path), error.message)


def validate_summary(document: Any, where: str) -> None:
    validate(document, SUMMARY_SCHEMA, where)


def validate_baseline(document: Any, where: str) -> None:
    validate(document, BASELINE_SCHEMA, where)
