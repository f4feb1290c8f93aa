"""Fixtures shared by the test suite (real trace files)."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """The project's shared folder of real traces (beside the checkout), for the large ones."""
    if not SHARED_TRACES.is_dir():
        pytest.skip(f"shared traces not found at {SHARED_TRACES} (large real traces live beside the checkout)")
    return SHARED_TRACES


@pytest.fixture(scope="session")
def eager_mixed_trace(shared_traces: Path) -> Path:
    path = shared_traces / "eager-mixed.rank0.pt.trace.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


# Real vLLM CPU server fixtures (one shared eager server per session); see tests/cpu_vllm.py.
from cpu_vllm import cpu_vllm_python, cpu_vllm_server, tiny_qwen3_model  # noqa: E402,F401
