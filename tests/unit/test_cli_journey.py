"""The offline CLI cases a new user met (issue 15 item 7): `summarize` on a folder of unrelated
traces, `report` given a baseline file, `compare --json` with the kernel table, and a command
that writes the tiny model. Real traces from tests/data; the tiny model with the real vLLM CPU
environment's interpreter (skipped without it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.baseline import BaselineStore
from pytest_vllm_profile.cli import main
from pytest_vllm_profile.tiny_model import REQUIRED_FILES
from support.cpu_vllm import vllm_cpu_python_or_skip

UNRELATED = (
    "h100-seed-rep0.rank0.pt.trace.json.gz",
    "base-rep0.pt.trace.json.gz",
    "cpu-eager-tiny4.rank0.pt.trace.json.gz",
)


def test_summarize_folder_of_unrelated_traces_is_an_error_listing_them(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in UNRELATED:
        shutil.copy(data_dir / name, tmp_path / name)
    assert main(["summarize", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{tmp_path}: 3 profile sessions for rank 0 (" in captured.err
    assert all(name in captured.err for name in UNRELATED) and "pass --latest" in captured.err
    assert main(["summarize", "--latest", str(tmp_path)]) == 0
    assert "3 traces for rank 0" in capsys.readouterr().out  # the note says which one was read


def test_report_on_a_baseline_file_says_what_report_takes(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = BaselineStore(tmp_path / "baselines")
    store.save(
        "tests/test_perf.py::test_decode",
        "cpu",
        "0.32.0",
        summarize_path(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz"),
    )
    baseline = store.path_for("tests/test_perf.py::test_decode")
    assert main(["report", str(baseline), "--out", str(tmp_path / "html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"vllm-profile report: error: {baseline}: that is a baseline file (of test "
        "'tests/test_perf.py::test_decode'); report takes a results file"
    )
    assert "TypeError" not in err and "unknown field" not in err


def test_compare_json_carries_the_kernel_table(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = (str(data_dir / f"base-rep{i}.pt.trace.json.gz") for i in (0, 1))
    assert main(["compare", base, cand, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["kernel_deltas"]
    assert data["verdict"] == "pass" and len(rows) > 10
    assert {"short_name", "step_kind", "baseline_us", "candidate_us", "delta_us"} <= set(rows[0])
    assert [abs(r["delta_us"]) for r in rows] == sorted((abs(r["delta_us"]) for r in rows), reverse=True)
    assert main(["compare", base, cand]) == 0  # the text table's first row is the JSON's first row
    text = capsys.readouterr().out
    assert rows[0]["short_name"] in text.split("top kernel changes")[1].splitlines()[2]


def test_tiny_model_module_without_torch_names_the_command_that_works(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_vllm_profile.tiny_model", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "is not installed in" in proc.stderr
    assert f"vllm-profile tiny-model {tmp_path / 'm'} --layers 4 --python" in proc.stderr


def test_tiny_model_command_writes_the_model_with_the_vllm_interpreter(
    tmp_path: Path, vllm_profile_command: list[str]
) -> None:
    python = vllm_cpu_python_or_skip()
    dest = tmp_path / "tiny"
    proc = subprocess.run(
        [*vllm_profile_command, "tiny-model", str(dest), "--layers", "2", "--python", python],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"vllm-profile tiny-model: wrote {dest} (2 layers)"
    assert all((dest / name).is_file() for name in REQUIRED_FILES)
    assert json.loads((dest / "config.json").read_text())["num_hidden_layers"] == 2
