"""Measure /stop_profile flush time and trace size with and without torch_profiler_with_stack.

Boots the real vLLM CPU server (tiny 4-layer Qwen3, eager) twice, once per setting, and runs
a few profiled passes of one request each. Prints one JSON line per pass. Usage:

    PYTHONPATH=src python scripts/measure-profiler-flush.py VLLM_PYTHON [--passes 3] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from pytest_vllm_profile.analysis.layers import LayerDetector
from pytest_vllm_profile.analysis.steps import StepDetector
from pytest_vllm_profile.capture import ProfileCapture
from pytest_vllm_profile.launchers.base import ServerSpec
from pytest_vllm_profile.launchers.process import ProcessLauncher
from pytest_vllm_profile.tiny_model import build_tiny_model
from pytest_vllm_profile.trace.torch_reader import read_torch_trace
from pytest_vllm_profile.workload import Workload


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("python")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flush-"))
    model = build_tiny_model(args.python, work / "model", layers=4)
    for with_stack in (True, False):
        traces = work / f"traces-stack-{with_stack}"
        traces.mkdir()
        spec = ServerSpec(
            model=str(model),
            served_model_name="tiny",
            server_args=("--enforce-eager", "--max-model-len", "256"),
            env={"VLLM_CPU_KVCACHE_SPACE": "1"},
            trace_dir=traces,
            health_timeout_s=600,
        )
        launcher = ProcessLauncher(spec, python=args.python, with_stack=with_stack)
        server = launcher.start()
        try:
            workload = Workload(model=str(model), served_model_name="tiny", max_tokens=args.max_tokens)
            for i in range(args.passes):
                result = ProfileCapture(server, workload).run()
                rank = result.rank_trace_files[0]
                trace = read_torch_trace(rank)
                steps = StepDetector().detect(trace)
                layers = LayerDetector().detect(trace, timing_domain=steps.domain)
                print(
                    json.dumps(
                        {
                            "with_stack": with_stack,
                            "pass": i,
                            "stop_profile_s": round(result.stop_profile_s, 3),
                            "wait_s": round(result.wait_s, 3),
                            "workload_s": round(result.workload_s, 3),
                            "trace_bytes": {p.name: p.stat().st_size for p in result.trace_files},
                            "events": len(trace.events),
                            "steps": len(steps.steps),
                            "layer_method": layers.method,
                            "layers": layers.layer_count,
                        }
                    ),
                    flush=True,
                )
        finally:
            launcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
