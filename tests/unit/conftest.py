"""Fixtures of the unit layer (library code on real traces and doubles)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support.paths import DATA


@pytest.fixture(scope="session")
def vllm_profile_command() -> list[str]:
    """The installed `vllm-profile` console script (pip install -e puts it beside the interpreter)."""
    script = Path(sys.executable).parent / "vllm-profile"
    assert script.is_file(), f"{script} missing: install the project (pip install -e '.[test]')"
    return [str(script)]


@pytest.fixture(scope="session")
def eager_mixed_trace() -> Path:
    return DATA / "eager-mixed.rank0.pt.trace.json.gz"
