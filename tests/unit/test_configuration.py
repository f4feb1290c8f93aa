"""`configuration.py`: what is on record, and what counts as a baseline made differently
(issue 15 item 2); `sessions.prune_sessions`: the retention rule (item 6)."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_vllm_profile.configuration import (
    RunConfiguration,
    ServerArgs,
    configuration_differences,
    server_args_on_record,
    server_env_on_record,
    workload_differences,
)
from pytest_vllm_profile.sessions import prune_sessions
from pytest_vllm_profile.workload import Workload

# The workload keys 0.1.0 wrote (before the timed pass, load shape and tolerances).
V010_KEYS = (
    "model",
    "max_tokens",
    "prompts",
    "repeats",
    "warmup_requests",
    "temperature",
    "ignore_eos",
    "batch",
    "server_args",
    "env",
    "served_model_name",
    "tensor_parallel_size",
    "expected_layers",
    "compare_step_kinds",
)


def test_a_0_1_0_workload_equals_todays_defaults() -> None:
    today = Workload(model="m").to_dict()
    old = {k: v for k, v in today.items() if k in V010_KEYS}
    assert workload_differences(old, today) == []
    assert workload_differences(old, Workload(model="m", concurrency=4).to_dict()) == ["concurrency: 1 -> 4"]


def test_judging_arguments_are_not_workload_changes() -> None:
    base = Workload(model="m").to_dict()
    judged = Workload(model="m", repeats=5, rel_tol=0.5, fail_on_drift=False, expected_layers=4).to_dict()
    assert workload_differences(base, judged) == []
    assert workload_differences(base, Workload(model="m", max_tokens=17).to_dict()) == ["max_tokens: 10 -> 17"]


def test_server_env_and_args_on_record_are_redacted() -> None:
    env = server_env_on_record(
        {"HF_TOKEN": "hf_x", "VLLM_CPU_KVCACHE_SPACE": "1"},
        inherited={"PATH": "/bin", "VLLM_LOGGING_LEVEL": "INFO", "AWS_SECRET_ACCESS_KEY": "s"},
    )
    assert env == {"HF_TOKEN": "<redacted>", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "INFO"}
    args = server_args_on_record(["--enforce-eager"], ["--api-key", "abc"], "ini")
    assert args == ServerArgs(marker=["--enforce-eager"], ini=["--api-key", "<redacted>"])


def test_configuration_differences_fail_on_server_args_and_note_the_rest() -> None:
    base = RunConfiguration(
        server_args=ServerArgs(option=["--dtype=float32"]),
        hardware="AMD EPYC",
        torch_version="2.9.0",
        server_env={"A": "1"},
    )
    same_args_other_box = RunConfiguration(
        server_args=ServerArgs(ini=["--dtype=float32"]),
        hardware="Intel Xeon",
        torch_version="2.9.0",
        server_env={"A": "2"},
    )
    failing, noted = configuration_differences(base, same_args_other_box)
    assert failing == []  # the same flags from the ini file instead of the command line
    assert noted == ["hardware: AMD EPYC -> Intel Xeon", "server environment differs in A"]
    failing, _ = configuration_differences(base, RunConfiguration())
    assert failing == ["server arguments from --vllm-server-arg / vllm_server_args: ['--dtype=float32'] -> []"]
    assert configuration_differences(None, base) == ([], [])  # a 0.1.0 baseline records none


def test_prune_keeps_the_newest_and_never_a_running_session(tmp_path: Path) -> None:
    names = [f"2026010{i}T000000Z-{999990 + i}" for i in range(1, 6)]
    running = f"20250101T000000Z-{os.getpid()}"  # the oldest, but its process is alive
    for name in [*names, running, "mine"]:
        (tmp_path / name).mkdir()
    current = "20270101T000000Z-1"
    deleted = prune_sessions(tmp_path, keep=3, current=current)
    assert [p.name for p in deleted] == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running, *names[3:], "mine"])
    assert prune_sessions(tmp_path, keep=0, current=current) == []


def test_a_baseline_saved_without_its_workload_is_not_different() -> None:
    assert workload_differences({}, Workload(model="m", prompts=("a", "b")).to_dict()) == []
    assert workload_differences({"max_tokens": 10}, {"model": "m", "max_tokens": 10}) == []  # model: only both


def test_html_report_shows_the_configuration_table(tmp_path: Path) -> None:
    from pytest_vllm_profile.report.html import write_html_report
    from pytest_vllm_profile.results import RunResults, TestResult

    config = RunConfiguration(
        plugin_version="0.1.0",
        launcher="process",
        server_command=["python", "-m", "vllm.entrypoints.openai.api_server", "--dtype=float32"],
        server_args=ServerArgs(option=["--dtype=float32"]),
        server_env={"HF_TOKEN": "<redacted>"},
        vllm_version="0.32.0",
        torch_version="2.9.0+cpu",
        hardware="AMD EPYC 7763",
    )
    results = RunResults(
        tests=[
            TestResult(
                nodeid="tests/test_perf.py::test_decode", outcome="passed", verdict="updated", configuration=config
            )
        ]
    )
    html = write_html_report(results, tmp_path).read_text()
    table = html.split("<h3>Configuration</h3>", 1)[1].split("</table>", 1)[0]
    assert "<th>server args (--vllm-server-arg)</th><td><code>--dtype=float32</code>" in table
    assert "<th>hardware</th><td><code>AMD EPYC 7763</code>" in table
    assert "HF_TOKEN=&lt;redacted&gt;" in table and "<th>torch</th><td><code>2.9.0+cpu</code>" in table


def test_workload_on_record_redacts_secret_env_and_flags() -> None:
    from pytest_vllm_profile.configuration import workload_on_record

    wl = Workload(
        model="m",
        env=(("HF_TOKEN", "hf_x"), ("VLLM_CPU_KVCACHE_SPACE", "1")),
        server_args=("--api-key", "k1", "--enforce-eager"),
    )
    data = workload_on_record(wl)
    assert data["env"] == {"HF_TOKEN": "<redacted>", "VLLM_CPU_KVCACHE_SPACE": "1"}
    assert data["server_args"] == ["--api-key", "<redacted>", "--enforce-eager"]
    assert workload_differences(data, workload_on_record(wl)) == []  # stored vs today: the same
