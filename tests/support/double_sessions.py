"""Shared parts of the plugin's pytester sessions against `RecordedTraceDouble` (tests/support/vllm_double.py).

The double is a real HTTP server speaking vLLM's endpoints that, on /stop_profile, writes a
REAL recorded vLLM trace (H100, Qwen3-8B shape, max_tokens=10: 10 steps x 36 layers) into
its trace folder. Regressions are made deterministic by serving base-rep1 (same workload,
0.2-0.5 % apart: passes) or a `_scaled_` copy of base-rep0 whose time axis is stretched by 5 %
(fails). The fixture `recorded_trace_double` is made visible by tests/conftest.py, `slowed_trace`
by tests/plugin/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# In-process pytester runs drop the modules first imported inside them; numpy cannot be
# imported twice in one process and httpx/httpcore re-imported apart stop mapping their
# exceptions. So everything the plugin imports lazily is imported out here first.
import pytest_vllm_profile.analysis  # noqa: F401
import pytest_vllm_profile.history  # noqa: F401
import pytest_vllm_profile.launchers.url  # noqa: F401
import pytest_vllm_profile.plugin.history  # noqa: F401
import pytest_vllm_profile.report.html  # noqa: F401
import pytest_vllm_profile.report.markdown  # noqa: F401
import pytest_vllm_profile.workload_profile  # noqa: F401

try:  # httpcore imports its connection code on first use: use it once out here
    httpx.get("http://127.0.0.1:9/", timeout=1.0)
except httpx.HTTPError:
    pass
from pytest_vllm_profile.results import RunResults
from support.vllm_double import DATA, DOUBLE_MODEL, RecordedTraceDouble, scaled_trace

REP0 = DATA / "base-rep0.pt.trace.json.gz"
REP1 = DATA / "base-rep1.pt.trace.json.gz"
H100 = "NVIDIA H100 80GB HBM3"

WORKLOAD_TEST = f"""
import pytest

@pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0)
def test_decode(vllm_profile):
    assert vllm_profile.token_steps == 10
    assert vllm_profile.layer_count == 36
    assert len(vllm_profile.steps_of("decode")) == 9
"""


@pytest.fixture
def recorded_trace_double(tmp_path: Path) -> Iterator[RecordedTraceDouble]:
    with RecordedTraceDouble(tmp_path / "server-traces", trace_source=REP0) as double:
        yield double


@pytest.fixture(scope="module")
def slowed_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base-rep0 with every timestamp offset and duration x1.05 (a 5 % slower GPU)."""
    return scaled_trace(REP0, 1.05, tmp_path_factory.mktemp("scaled"))


def run(pytester: pytest.Pytester, double: RecordedTraceDouble, *args: str) -> pytest.RunResult:
    # `--opt=value` form: pytest takes a bare existing path argument into its rootdir guess.
    # No timed pass by default: the double answers at once, so its latency is only this machine's
    # jitter (TTFT p90 8 -> 14 ms between two runs here) and a latency verdict on it would be
    # noise. Tests of the timed pass through the plugin ask for it (--vllm-timed-repeats=N, later
    # args win); the latency verdict is tested on built inputs and on the real vLLM CPU server.
    return pytester.runpytest(
        "--vllm-profile",
        "--vllm-launcher=url",
        f"--vllm-url={double.url}",
        f"--vllm-trace-dir={double.trace_dir}",
        "--vllm-repeats=1",
        "--vllm-timed-repeats=0",
        "-o",
        "vllm_capture_poll_s=0.05",
        "-p",
        "no:cacheprovider",
        *args,
    )


def record_baseline(pytester: pytest.Pytester, double: RecordedTraceDouble, *args: str) -> None:
    """Write the workload test and record its baseline (one passing `--update-baselines` session)."""
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    run(pytester, double, "--update-baselines", *args).assert_outcomes(passed=1)


def run_with_baseline_text(
    pytester: pytest.Pytester, double: RecordedTraceDouble, text: str, *args: str
) -> tuple[Path, pytest.RunResult]:
    """A session of the workload test whose baseline file holds `text` (a damaged baseline)."""
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    path = baseline_file(pytester)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path, run(pytester, double, *args)


def baseline_file(pytester: pytest.Pytester, test: str = "test_decode") -> Path:
    return pytester.path / "baselines" / "test_workload" / f"{test}.json"


def load_results(pytester: pytest.Pytester) -> RunResults:
    return RunResults.load(pytester.path / ".vllm-profile" / "results.json")
