"""End to end (issue 12): the timed pass and step overhead in the verdict, on the REAL vLLM CPU server.

One inner pytest project (pytester, `pytest --vllm-profile --vllm-launcher process`) with two
tests sharing one server: the seed workload and a load-shaped one (concurrency 2, prompts of an
exact input length built with the server's tokenizer). Three inner runs, three
server boots: record the baselines, re-check them (passes), and re-check the seed test on a
server whose engine sleeps 30 ms in every scheduler step (a REAL injected CPU delay, a
sitecustomize on the server's PYTHONPATH: tests/support/scheduler_delay.py) — which must FAIL naming
TPOT/ITL and the step period while the op set stays the same (or, when the baseline's own TPOT
was noisier than the delay, end-to-end latency: a client starved of CPU on a shared machine
reads a whole answer at once).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest

from pytest_vllm_profile.baseline import read_baseline_file
from pytest_vllm_profile.tiny_model import build_tiny_model
from support.cpu_vllm import TINY_SERVED_NAME, TINY_SERVER_ARGS, TINY_SERVER_ENV
from support.e2e import run_inner_session
from support.scheduler_delay import scheduler_delay_env, write_scheduler_delay_site

pytestmark = pytest.mark.cpu_vllm

INNER_TIMEOUT_S = 900
INJECTED_DELAY_MS = 30.0
EXTRA_ENV = "E2E_EXTRA_SERVER_ENV"  # JSON: extra server environment for the inner run (the delay)
# +200 % (--vllm-rel-tol, which latency takes too as the larger of it and the 10 % latency
# default), twice tests/e2e/test_e2e_cpu_vllm.py's +100 %: at concurrency 2 on the 2-core machine
# the client is starved even when nothing else runs — a same-config re-run of test_shaped moved
# end-to-end latency p50 24.7 -> 43.4 ms (+76 %) and throughput 466 -> 267 tok/s (its inverse
# +75 %), and a busier CI machine moves it further. The injected delay moves the decode step
# period by +854 % and end-to-end latency by +998 % (same run), far past either.
CHECK_ARGS = ("--vllm-rel-tol", "2.0", "--vllm-abs-floor-us", "250")

INNER_TESTS = """
import json
import os

import pytest

ENV = {{**{env!r}, **json.loads(os.environ.get("{extra}", "{{}}"))}}


@pytest.mark.vllm_workload(model={model!r}, served_model_name={served!r}, max_tokens=10,
                           server_args={args!r}, env=ENV)
def test_seed(vllm_profile):
    assert vllm_profile.token_steps == 10


@pytest.mark.vllm_workload(model={model!r}, served_model_name={served!r}, max_tokens=6, server_args={args!r},
                           env=ENV, input_len=24, concurrency=2, num_requests=2, compare_step_kinds=["decode"])
def test_shaped(vllm_profile):
    assert vllm_profile.timed_pass is not None
    assert vllm_profile.timed_pass.prompt_tokens == (24, 24)
"""


@pytest.fixture(scope="module")
def tiny_model(cpu_vllm_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(cpu_vllm_python, tmp_path_factory.mktemp("e2e-latency-tiny"), layers=4)


def _run(pytester: pytest.Pytester, python: str, label: str, *extra: str) -> tuple[pytest.RunResult, dict]:
    root = Path(pytester.path)
    results = root / f"results-{label}.json"
    t0 = time.monotonic()
    result = run_inner_session(pytester, "test_latency.py", python, results, *extra, timeout_s=INNER_TIMEOUT_S)
    print(f"[{label}] inner exit {result.ret} in {time.monotonic() - t0:.0f} s")
    assert results.is_file(), result.stdout.str()
    return result, {t["nodeid"].split("::")[-1]: t for t in json.loads(results.read_text())["tests"]}


def _latency(test: dict, metric: str) -> float:
    samples = [r[metric] for run in test["timed_pass"]["runs"] for r in run["requests"]]
    return sorted(samples)[len(samples) // 2]


def test_injected_scheduler_delay_fails_on_tpot_itl_and_step_period(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cpu_vllm_python: str, tiny_model: Path, tmp_path: Path
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_latency=INNER_TESTS.format(
            env=dict(TINY_SERVER_ENV),
            extra=EXTRA_ENV,
            model=str(tiny_model),
            served=TINY_SERVED_NAME,
            args=list(TINY_SERVER_ARGS),
        )
    )
    monkeypatch.delenv(EXTRA_ENV, raising=False)

    # a. record both tests (one server: the load shape is not part of the server identity)
    result, tests = _run(pytester, cpu_vllm_python, "record", "--update-baselines", "--vllm-repeats", "3")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=2)
    seed = tests["test_seed"]
    assert len(seed["timed_pass"]["runs"]) == 3  # the session default --vllm-timed-repeats
    assert all(
        len(run["requests"]) == 1 and run["requests"][0]["output_tokens"] == 10 for run in seed["timed_pass"]["runs"]
    )
    assert "decode" in seed["summary"]["step_overhead"]
    shaped = tests["test_shaped"]
    assert shaped["timed_pass"]["shape"]["concurrency"] == 2
    # one batched request of two prompts: how they split between prefill and mixed steps depends on
    # timing (7 vs 6 steps between two repeats seen here), so the marker compares decode steps only
    assert shaped["summary"]["token_steps"] >= 6 and shaped["verdict"] == "updated"
    assert all(r["prompt_tokens"] == 24 for run in shaped["timed_pass"]["runs"] for r in run["requests"])
    baseline = read_baseline_file(Path(pytester.path) / "baselines" / "test_latency" / "test_seed.json")
    entry = baseline.entries["cpu"]["0.32.0"]
    assert entry.timed is not None and len(entry.timed.runs) == 3  # the baseline keeps the timed pass

    # b. the plain re-run passes, latency compared
    result, tests = _run(pytester, cpu_vllm_python, "recheck", "--vllm-repeats", "2", *CHECK_ARGS)
    messages = "\n".join(t["message"] for t in tests.values())
    assert result.ret == 0, f"{messages}\n{result.stdout.str()}"
    result.assert_outcomes(passed=2)
    for test in tests.values():
        assert test["verdict"] == "pass"
        assert not any("latency not compared" in n for n in test["comparison"]["notes"])

    # c. the same seed test on a server whose engine sleeps in every scheduler step
    site = write_scheduler_delay_site(tmp_path / "site", INJECTED_DELAY_MS)
    log = tmp_path / "patched.log"
    monkeypatch.setenv(EXTRA_ENV, json.dumps(scheduler_delay_env(site, INJECTED_DELAY_MS, log)))
    result, tests = _run(pytester, cpu_vllm_python, "delayed", "-k", "test_seed", "--vllm-repeats", "1", *CHECK_ARGS)
    output = result.stdout.str()
    assert "patched Scheduler.schedule +30.0 ms" in log.read_text()  # the delay really was in the engine
    assert result.ret == 1, output
    delayed = tests["test_seed"]
    assert delayed["verdict"] == "fail"
    comparison = delayed["comparison"]
    failed = {f["metric"] for f in comparison["regressions"]}
    print("[delayed] regressions: " + "; ".join(f["message"] for f in comparison["regressions"][:8]))
    print("[delayed] notes: " + "; ".join(comparison["notes"]))
    per_token = {f"latency.{m}.{p}" for m in ("tpot_ms", "itl_ms") for p in ("p50", "p90")}
    bunched = any(n.startswith("token latency (TTFT, TPOT, ITL) not compared") for n in comparison["notes"])
    if not failed & per_token:
        # Only allowed when the client read tokens in bunches (starved of CPU on the shared 2-core
        # machine: TPOT run medians of 0.02, 35.8 and 0.02 ms seen in one baseline) or the
        # baseline's own TPOT was noisier than the delay; then end-to-end latency must tell, unless
        # the load made the baseline's timed repeats noisier still (seen once with three suites at
        # once on 2 cores: the verdict still failed, on the step period, and the e2e rise below holds).
        medians = [
            statistics.median(r["tpot_ms"] for r in run["requests"]) for run in delayed["baseline_timed_pass"]["runs"]
        ]
        assert bunched or max(medians) - min(medians) > INJECTED_DELAY_MS, (failed, medians)
    assert failed & {"step.decode.period_us", "step.decode.wall_us"}, failed
    # the same ops ran: no kernel (aten op) appeared or disappeared, no count changed
    assert comparison["new_kernels"] == [] and comparison["missing_kernels"] == []
    assert not [f for f in comparison["regressions"] if f["kind"] == "count"], comparison["regressions"]
    latency = [f for f in comparison["regressions"] if f["metric"].startswith("latency.")]
    if latency or not bunched:
        # the finding names baseline vs candidate and the noise it was judged against, and the trace explains it
        assert latency, failed
        assert latency[0]["candidate"] > latency[0]["baseline"] and "allowed" in latency[0]["message"]
        assert any(n.startswith("attribution: ") for n in comparison["notes"]), comparison["notes"]
        assert "REGRESSION TPOT" in output or "REGRESSION ITL" in output or "REGRESSION end-to-end" in output
    # one scheduler step per output token: the answer comes about 10 delays later than in the baseline
    rise = _latency(delayed, "e2e_ms") - _latency({"timed_pass": delayed["baseline_timed_pass"]}, "e2e_ms")
    print(f"[delayed] e2e median +{rise:.1f} ms for +{INJECTED_DELAY_MS:g} ms per scheduler step x 10 tokens")
    assert rise > 5 * INJECTED_DELAY_MS
