"""Generate the shipped JSON Schemas from the typed model (`msgspec.json.schema`).

The files in this folder are this module's output, committed so they ship and can be read
without importing the model; `tests/unit/test_model.py` proves they equal what the model gives.
After changing a model type run `python -m pytest_vllm_profile.schemas.generate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from ..baseline_file import BaselineFile
from ..summary import ProfileSummary
from . import BASELINE_SCHEMA, SUMMARY_SCHEMA

_ID_BASE = "https://pytest-vllm-profile.invalid/schemas/"
_MODELS: dict[str, tuple[type, str, str]] = {
    SUMMARY_SCHEMA: (
        ProfileSummary,
        "ProfileSummary",
        (
            "pytest_vllm_profile.summary.ProfileSummary as JSON. Times are microseconds. Fields with defaults "
            "may be absent (older files), unknown fields are tolerated (newer minor versions), types are checked."
        ),
    ),
    BASELINE_SCHEMA: (
        BaselineFile,
        "Baseline file",
        (
            "One file per test: the accepted ProfileSummary (median of repeats) per GPU model and vLLM version. "
            "Written by pytest_vllm_profile.baseline.BaselineStore."
        ),
    ),
}


def generate(name: str) -> dict[str, Any]:
    """The schema `name` (SUMMARY_SCHEMA or BASELINE_SCHEMA) as the model describes it."""
    kind, title, description = _MODELS[name]
    # Through JSON, so defaults come out as JSON has them (a tuple default () is the file's []).
    body = json.loads(msgspec.json.encode(msgspec.json.schema(kind)))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _ID_BASE + name,
        "title": title,
        "description": description,
        **body,
    }


def schema_text(name: str) -> str:
    """The committed file's exact text for schema `name`."""
    return json.dumps(generate(name), indent=1) + "\n"


def main() -> None:
    folder = Path(__file__).parent
    for name in _MODELS:
        (folder / name).write_text(schema_text(name), encoding="utf-8")
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
