"""Copy the seed test's real H200 data of 2026-12-02 into tests/data/h200-seed-reps (run once).

Input: the device machine's returned folders (/work/gv/x/<step>/: <step>-results.json and
traces/), written by scripts/gpu-validate.sh as scripts/gpu-validate-all.sh runs it. Output:
the rank0 engine traces of the five same-config runs (unedited copies, run<N>-rep<K>: capture K of
run N) and h200-seed-runs.json: per run its step, the trace each file came from and the seed
test's timed pass exactly as the results file holds it; the eager and triton runs' timed pass
and combined profile summary (their traces did not come back).
Usage: python benchmarks/extract_h200_runs.py [SOURCE_DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "h200-seed-reps"
RUNS = ("torch-record", "torch-rerun", "calib1", "calib2", "calib3")  # run1 .. run5
DETECT = ("eager", "triton")
SEED = "tests/gpu/test_qwen3_8b_shape.py::test_seed_workload_token_and_layer_peaks"
CAPTURE = "test_qwen3_8b_shape.test_seed_workload_token_and_layer_peaks"


def seed_test(results: Path) -> dict:
    data = json.loads(results.read_text())
    return next(t for t in data["tests"] if t["nodeid"] == SEED)


def main(source: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    out: dict = {"test": SEED, "runs": [], "detection": {}}
    for n, step in enumerate(RUNS, start=1):
        test = seed_test(source / step / f"{step}-results.json")
        copied = {}
        for k in range(3):
            (trace,) = sorted((source / step / "traces").glob(f"**/capture-{k}-{CAPTURE}/rank0.*.pt.trace.json.gz"))
            name = f"run{n}-rep{k}.rank0.pt.trace.json.gz"
            shutil.copyfile(trace, OUT / name)
            copied[name] = str(trace.relative_to(source))
        out["runs"].append(
            {
                "run": f"run{n}",
                "step": step,
                "verdict": test["verdict"],
                "traces": copied,
                "timed_pass": test["timed_pass"],
            }
        )
    for step in DETECT:
        test = seed_test(source / step / f"{step}-results.json")
        out["detection"][step] = {
            "step": step,
            "verdict": test["verdict"],
            "timed_pass": test["timed_pass"],
            "summary": test["summary"],
        }
    (OUT / "h200-seed-runs.json").write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/gv/x"))
