"""`vllm-profile compare BASELINE CANDIDATE`: inputs, exit codes, JSON and text output.

Summaries BUILT in tests (`built_` names; see test_compare.built_summary) are written as
summary JSON / baseline files; the `real_` tests run the installed command on the real H100
traces tests/data/base-rep0 / base-rep1.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.baseline import BaselineStore
from pytest_vllm_profile.cli import main
from pytest_vllm_profile.codec import encode_json
from support.summaries import BUILT_KERNELS, built_summary, scaled_decode

NODEID = "tests/perf/test_model.py::test_decode"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def summaries(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for label, scale in (("base", {}), ("same", {}), ("slow", {"decode": 1.03}), ("fast", {"decode": 0.9})):
        path = tmp_path / f"{label}.summary.json"
        path.write_text(encode_json(built_summary(scale)))
        paths[label] = path
    return paths


def test_built_same_summary_exits_0_with_json_verdict(
    capsys: pytest.CaptureFixture[str], summaries: dict[str, Path]
) -> None:
    code, out, err = run_cli(capsys, str(summaries["base"]), str(summaries["same"]), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "pass"
    assert data["regressions"] == [] and data["new_kernels"] == [] and data["missing_kernels"] == []


def test_built_3_percent_slower_exits_1_and_names_the_regression(
    capsys: pytest.CaptureFixture[str], summaries: dict[str, Path]
) -> None:
    code, out, _ = run_cli(capsys, str(summaries["base"]), str(summaries["slow"]), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["verdict"] == "fail"
    assert data["regressions"][0]["metric"] == "step.decode.op_time_us"
    code, text, _ = run_cli(capsys, str(summaries["base"]), str(summaries["slow"]))
    assert code == 1
    assert "verdict: fail" in text
    assert "REGRESSION decode step GPU time" in text
    assert "top kernel changes (µs per step):" in text and "nvjet_gemm_64x8_TNT" in text


def test_built_rel_tol_option_widens_the_tolerance(
    capsys: pytest.CaptureFixture[str], summaries: dict[str, Path]
) -> None:
    code, out, _ = run_cli(capsys, str(summaries["base"]), str(summaries["slow"]), "--rel-tol", "0.05", "--json")
    assert code == 0, out


def test_built_faster_exits_0_and_reports_improvement(
    capsys: pytest.CaptureFixture[str], summaries: dict[str, Path]
) -> None:
    code, out, _ = run_cli(capsys, str(summaries["base"]), str(summaries["fast"]))
    assert code == 0
    assert "improvement(s)" in out


def test_built_baseline_file_entry_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], summaries: dict[str, Path]
) -> None:
    store = BaselineStore(tmp_path / "baselines")
    store.save(NODEID, "H100", "0.26.0", built_summary())
    store.save(NODEID, "H200", "0.26.0", built_summary({"decode": 0.8}))
    path = store.path_for(NODEID)
    code, _, err = run_cli(capsys, str(path), str(summaries["same"]))
    assert code == 2
    assert "holds 2 baseline entries" in err and "--gpu 'H100'" in err and "--gpu 'H200'" in err
    assert "Traceback" not in err
    code, out, err = run_cli(capsys, str(path), str(summaries["same"]), "--gpu", "H100", "--json")
    assert code == 0, err
    code, _, _ = run_cli(capsys, str(path), str(summaries["same"]), "--gpu", "H200")
    assert code == 1  # the H200 entry is 20 % faster: the candidate is a regression against it
    code, _, err = run_cli(capsys, str(path), str(summaries["same"]), "--gpu", "A100")
    assert code == 2 and "no baseline entry matches --gpu 'A100'" in err


def test_built_kernel_drift_fails_unless_no_fail_on_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], summaries: dict[str, Path]
) -> None:

    renamed = {("attn_v2" if k.startswith("void flash::attn_fwd<") else k): v for k, v in BUILT_KERNELS.items()}
    cand = tmp_path / "renamed.json"
    cand.write_text(encode_json(built_summary(kernels=renamed)))
    code, out, _ = run_cli(capsys, str(summaries["base"]), str(cand), "--json")
    data = json.loads(out)
    assert code == 1 and data["new_kernels"] == ["attn_v2"]
    assert data["missing_kernels"] == ["void flash::attn_fwd<128>(Params)"]
    code, _, _ = run_cli(capsys, str(summaries["base"]), str(cand), "--no-fail-on-drift")
    assert code == 0


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file or folder"),
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1, "source": []}', "neither a baseline file nor a valid summary JSON"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_unusable_input_exits_2_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], summaries: dict[str, Path], content: str | None, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    code, out, err = run_cli(capsys, str(summaries["base"]), str(bad))
    assert code == 2
    assert expected in err and str(bad) in err
    assert "Traceback" not in err and out == ""


def test_built_gpu_vs_cpu_summary_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], summaries: dict[str, Path]
) -> None:
    cpu = tmp_path / "cpu.json"
    cpu.write_text(encode_json(built_summary(domain="cpu")))
    code, _, err = run_cli(capsys, str(summaries["base"]), str(cpu))
    assert code == 2 and "GPU kernel time and CPU op time" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "only-one-argument"])
    assert info.value.code == 2


# ---------------------------------------------------------------------------------------------
# Real traces through the installed console script.
# ---------------------------------------------------------------------------------------------


def test_real_base_rep0_vs_rep1_traces_exit_0(data_dir: Path, vllm_profile_command: list[str]) -> None:
    proc = subprocess.run(
        [
            *vllm_profile_command,
            "compare",
            str(data_dir / "base-rep0.pt.trace.json.gz"),
            str(data_dir / "base-rep1.pt.trace.json.gz"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    data = json.loads(proc.stdout)
    assert data["verdict"] == "pass" and data["regressions"] == []
    decode = next(s for s in data["step_times"] if s["kind"] == "decode")
    assert 6000 < decode["baseline_us"] < 6200  # ~6.07 ms decode step on the H100


def test_real_trace_against_its_saved_summary_with_decode_scaled_by_1_03_exits_1(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    rep0 = summarize_path(data_dir / "base-rep0.pt.trace.json.gz")
    slower = tmp_path / "rep0-decode-x1.03.json"
    slower.write_text(encode_json(scaled_decode(rep0, 1.03)))
    code, out, err = run_cli(capsys, str(data_dir / "base-rep1.pt.trace.json.gz"), str(slower))
    assert code == 1, err
    assert "REGRESSION decode step GPU time" in out


def test_real_baseline_file_of_two_repeats_against_real_trace_exits_0(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_vllm_profile.repeats import combine_repeats

    median, spread = combine_repeats([summarize_path(data_dir / f"base-rep{i}.pt.trace.json.gz") for i in (0, 1)])
    store = BaselineStore(tmp_path)
    store.save(NODEID, median.device.name, median.runtime.vllm_version, median, repeats=2, spread=spread)
    code, out, err = run_cli(capsys, str(store.path_for(NODEID)), str(data_dir / "base-rep1.pt.trace.json.gz"))
    assert code == 0, err + out
    assert "2 repeat(s)" in out and "verdict: pass" in out


@pytest.mark.parametrize(("candidate", "verdict_code"), [("slow", 1), ("same", 0)])
def test_built_real_pipe_closed_before_output_keeps_the_verdict_exit_code(
    summaries: dict[str, Path], vllm_profile_command: list[str], candidate: str, verdict_code: int
) -> None:
    # `vllm-profile compare ... | head`: a real pipe whose reader is gone before the command
    # writes (closed at once; the command takes ~1 s to import), so its first write gets EPIPE.
    # A regression must still exit 1: a CI step `compare | head` must not pass on it.
    for extra in ([], ["--json"]):
        proc = subprocess.Popen(
            [*vllm_profile_command, "compare", *extra, str(summaries["base"]), str(summaries[candidate])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == verdict_code, err
        assert "Traceback" not in err and "Exception ignored" not in err and "Broken pipe" not in err, err
