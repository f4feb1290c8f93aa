"""Fixtures shared by the test suite (real trace files)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def vllm_profile_command() -> list[str]:
    """The installed `vllm-profile` console script (pip install -e puts it beside the interpreter)."""
    script = Path(sys.executable).parent / "vllm-profile"
    assert script.is_file(), f"{script} missing: install the project (pip install -e '.[test]')"
    return [str(script)]


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only an empty folder: no nsys (or anything else) anywhere."""
    folder = tmp_path / "bin-empty"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    # nor in the install folders nsys is looked for in (a machine with scripts/setup-nsys.sh has one)
    monkeypatch.setattr("pytest_vllm_profile.launchers.nsys_tool.INSTALL_GLOBS", ())
    return folder


@pytest.fixture(scope="session")
def eager_mixed_trace() -> Path:
    return DATA / "eager-mixed.rank0.pt.trace.json.gz"


# The plugin's own pytester sessions run both in one process and under pytest-xdist (-n 2):
# under xdist the tests run in worker processes and their results reach the controller with
# the reports, a different path for the results file, the terminal section and the hooks.
PYTESTER_XDIST_MODES = {"no-xdist": (), "xdist-n2": ("-n", "2")}


@pytest.fixture(params=list(PYTESTER_XDIST_MODES))
def xdist_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Extra arguments for an inner pytester run: none, or `-n 2`."""
    return PYTESTER_XDIST_MODES[request.param]


# Real vLLM CPU server fixtures (one shared eager server per session); see tests/cpu_vllm.py.
from cpu_vllm import cpu_vllm_python, cpu_vllm_server, tiny_qwen3_model  # noqa: E402,F401

# The recorded-trace HTTP double of the plugin's pytester sessions; see tests/double_sessions.py.
from double_sessions import recorded_trace_double, slowed_trace  # noqa: E402,F401
