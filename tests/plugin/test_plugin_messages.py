"""Whole messages, cause first (issue 15 item 3): pytest's one-line summary shows the cause (no
test-id prefix), and results.json keeps the head of a long message, not its tail.

Against `recorded_trace_double` (tests/support/vllm_double.py) and an unreachable URL (nothing listens
on port 9).
"""

from __future__ import annotations

import pytest

from pytest_vllm_profile.plugin.messages import MESSAGE_HEAD_CHARS, keep_head
from support.double_sessions import WORKLOAD_TEST, load_results, run
from support.vllm_double import DOUBLE_MODEL, RecordedTraceDouble

LONG_FAILURE_TEST = f"""
import pytest

@pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0)
def test_long(vllm_profile):
    raise AssertionError("the first line says why\\n" + "detail line\\n" * 2000)
"""


def test_long_failure_keeps_its_head_in_results(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=LONG_FAILURE_TEST)
    run(pytester, recorded_trace_double).assert_outcomes(failed=1)
    (test,) = load_results(pytester).tests
    assert test.message.startswith("AssertionError: the first line says why\n")
    assert test.message.endswith("more characters not kept; see pytest's report]")


def test_server_error_summary_line_names_the_cause_not_the_test_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    trace_dir = pytester.mkdir("traces")
    result = pytester.runpytest(
        "--vllm-profile",
        "--vllm-launcher=url",
        "--vllm-url=http://127.0.0.1:9",
        f"--vllm-trace-dir={trace_dir}",
        "--vllm-repeats=1",
        "--vllm-health-timeout=1",
        "-p",
        "no:cacheprovider",
        "-rE",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["ERROR test_workload.py::test_decode - Failed: LauncherError: vLLM server at h*"])
    (test,) = load_results(pytester).tests
    assert test.message.startswith("LauncherError: vLLM server at http://127.0.0.1:9")


def test_keep_head_keeps_short_text_whole_and_cuts_long_text_at_its_end() -> None:
    assert keep_head("short") == "short"
    text = "cause\n" + "x" * (2 * MESSAGE_HEAD_CHARS)
    kept = keep_head(text)
    assert kept.startswith("cause\n") and kept[:MESSAGE_HEAD_CHARS] == text[:MESSAGE_HEAD_CHARS]
    assert f"[... {len(text) - MESSAGE_HEAD_CHARS} more characters" in kept
