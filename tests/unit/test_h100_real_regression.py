"""The regression the H100 validation caught, replayed offline on the real traces it wrote.

`h100-seed-rep0/rep1` are two repeats of the seed workload on one vLLM 0.26 server (FLASH_ATTN,
the default); `h100-seed-triton-attn` is the same workload after changing the server, not the
code: `--attention-backend TRITON_ATTN` (docs/gpu-validation.md). No GPU needed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _compare(data_dir, baseline: str, candidate: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_vllm_profile.cli",
            "compare",
            str(data_dir / baseline),
            str(data_dir / candidate),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_same_server_repeats_pass(data_dir) -> None:
    done = _compare(data_dir, "h100-seed-rep0.rank0.pt.trace.json.gz", "h100-seed-rep1.rank0.pt.trace.json.gz")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["verdict"] == "pass"


def test_attention_backend_change_fails_naming_the_attention_kernels(data_dir) -> None:
    done = _compare(data_dir, "h100-seed-rep0.rank0.pt.trace.json.gz", "h100-seed-triton-attn.rank0.pt.trace.json.gz")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["verdict"] == "fail"
    missing = [n for n in result["missing_kernels"] if "FlashAttnFwdSm90" in n]
    new = [n for n in result["new_kernels"] if "kernel_unified_attention" in n]
    assert missing and new
    # the step-time change is reported too (TRITON_ATTN happened to be faster here)
    decode = next(s for s in result["step_times"] if s["kind"] == "decode")
    assert decode["delta_pct"] == pytest.approx(-3.43, abs=0.05)
