"""`vllm-profile summarize` through `cli.main` (and once through the installed script)."""

from __future__ import annotations

import json
import subprocess

import pytest

from pytest_vllm_profile.cli import main


def test_json_output_has_the_documented_fields(data_dir, capsys):
    assert main(["summarize", str(data_dir / "base-rep0.pt.trace.json.gz"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["token_steps"] == 10 and data["layer_count"] == 36
    assert isinstance(data["total_kernel_us"], float)
    assert all({"kind", "op_time_us", "layers"} <= set(s) for s in data["steps"])
    assert all({"name", "count", "total_us"} <= set(k) for k in data["kernels"])
    assert data["roofline"] is None


def test_model_bytes_gives_roofline(data_dir, capsys):
    trace = str(data_dir / "base-rep0.pt.trace.json.gz")
    assert main(["summarize", trace, "--json", "--model-bytes", "16381470720"]) == 0
    assert 0.78 < json.loads(capsys.readouterr().out)["roofline"]["fraction"] < 0.83


def test_table_output(data_dir, capsys):
    assert main(["summarize", str(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz")]) == 0
    out = capsys.readouterr().out
    assert "Token steps: 10" in out and "layers per step: 4" in out
    assert "CPU op" in out and "prefill" in out


def test_no_argument_runs_on_the_embedded_example(capsys):
    assert main(["summarize"]) == 0
    out = capsys.readouterr().out
    assert "Embedded example" in out
    assert "Token steps: 10" in out and "layers per step: 36" in out
    assert "flash::FlashAttnFwdSm90" in out and "% of the memory-bandwidth bound" in out


def test_missing_file_exit_1_message_on_stderr(tmp_path, capsys):
    assert main(["summarize", str(tmp_path / "nope.json.gz")]) == 1
    err = capsys.readouterr().err
    assert "nope.json.gz" in err and "Traceback" not in err


def test_not_a_trace_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.pt.trace.json"
    bad.write_text("{not json")
    assert main(["summarize", str(bad)]) == 1
    assert "bad.pt.trace.json" in capsys.readouterr().err


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summarize", "--model-bytes", "many"])
    assert info.value.code == 2


def test_installed_script(data_dir, vllm_profile_command):
    proc = subprocess.run(
        [*vllm_profile_command, "summarize", str(data_dir / "missing.json")], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "missing.json" in proc.stderr and "Traceback" not in proc.stderr


def test_output_to_a_reader_that_closes_early_is_not_an_error_closed_pipe_stand_in(
    monkeypatch, tmp_path, capsys
) -> None:
    # `vllm-profile summarize | head -2`: writing to the closed pipe raises BrokenPipeError.
    from pytest_vllm_profile.cli import main

    sink = open(tmp_path / "stdout", "w")

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

        def fileno(self) -> int:
            return sink.fileno()

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["summarize"]) == 0
    assert "Broken pipe" not in capsys.readouterr().err


def test_real_pipe_closed_before_output_exits_0_without_traceback(data_dir, vllm_profile_command):
    # `vllm-profile summarize | head`, with the reader gone before the first write (EPIPE).
    for extra in ([], ["--json"]):
        trace = data_dir / "base-rep0.pt.trace.json.gz"
        proc = subprocess.Popen(
            [*vllm_profile_command, "summarize", *extra, str(trace)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, err
        assert "Traceback" not in err and "Exception ignored" not in err, err
