"""Fixtures and hooks every test layer needs (tests/unit, tests/plugin, tests/e2e).

The layers (README "Tests"): unit = library code on real traces and doubles, no pytest plugin
session, nothing booted; plugin = the plugin in pytester sessions against the recorded-trace
double; e2e = real vLLM CPU servers, real Podman, real nsys, real PostgreSQL. Each test gets its
layer's marker (`-m unit`, `-m "not e2e"`). Shared builders and doubles live in tests/support
(importable as `support`: pytest puts this folder on sys.path for this conftest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cpu_vllm import cpu_vllm_python  # noqa: F401 - fixture (unit tests read the installed vLLM)
from support.double_sessions import recorded_trace_double  # noqa: F401 - fixture (unit pool tests, plugin)
from support.paths import DATA, TESTS_DIR

LAYERS = ("unit", "plugin", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(TESTS_DIR).parts if item.path.is_relative_to(TESTS_DIR) else ()
        if parts and parts[0] in LAYERS:
            item.add_marker(parts[0])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only an empty folder: no nsys (or anything else) anywhere."""
    folder = tmp_path / "bin-empty"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    # nor in the install folders nsys is looked for in (a machine with scripts/setup-nsys.sh has one)
    monkeypatch.setattr("pytest_vllm_profile.launchers.nsys_tool.INSTALL_GLOBS", ())
    return folder
