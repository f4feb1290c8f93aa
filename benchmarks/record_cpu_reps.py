"""Record same-config repeats on the REAL vLLM CPU server, for the calibration benchmark.

One server boot (tiny 4-layer Qwen3, eager, as tests/support/cpu_vllm.py): N profiled passes of the
seed workload (prompt "What is the capital of France?", max_tokens=10), each summarized, and
a timed pass whose per-request latency samples are kept. Writes, under OUT:
  cpu-rep<i>.summary.json   summaries of the profiled passes (analysis of the real traces)
  cpu-latency.json          TimedPassResult of the timed pass (per-request samples)
Usage: PYTHONPATH=src:tests python benchmarks/record_cpu_reps.py OUT [N]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pytest_vllm_profile.analysis.summarize import summarize
from pytest_vllm_profile.capture import ProfileCapture
from pytest_vllm_profile.codec import encode_json
from pytest_vllm_profile.latency import LoadShape
from pytest_vllm_profile.launchers.process import ProcessLauncher
from pytest_vllm_profile.timed_pass import run_timed_pass
from pytest_vllm_profile.tiny_model import build_tiny_model
from pytest_vllm_profile.trace.discovery import read_trace_set
from pytest_vllm_profile.workload import Workload
from support.cpu_vllm import tiny_server_spec, vllm_cpu_venv

PROMPT = "What is the capital of France?"


def main(out: Path, repeats: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    python = str((vllm_cpu_venv() / "bin" / "python").absolute())
    work = Path(tempfile.mkdtemp(prefix="cpu-reps-"))
    model = build_tiny_model(python, work / "model", layers=4)
    traces = work / "traces"
    traces.mkdir()
    launcher = ProcessLauncher(tiny_server_spec(model, traces), python=python)
    server = launcher.start()
    try:
        workload = Workload(model="tiny", prompts=(PROMPT,), max_tokens=10)
        for i in range(repeats):
            result = ProfileCapture(server, workload).run()
            summary = summarize(read_trace_set(result.rank_trace_files[0]))
            keep = out / f"cpu-rep{i}.rank0.pt.trace.json.gz"
            keep.write_bytes(result.rank_trace_files[0].read_bytes())
            (out / f"cpu-rep{i}.summary.json").write_text(encode_json(summary) + "\n")
            print(f"rep {i}: {result.rank_trace_files[0]}", flush=True)
        shape = LoadShape(max_tokens=10, num_requests=8, repeats=3)
        timed = run_timed_pass(server.base_url, server.model_name, shape, [PROMPT])
        (out / "cpu-latency.json").write_text(encode_json(timed) + "\n")
    finally:
        launcher.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 6)
