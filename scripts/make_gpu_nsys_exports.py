"""Make the real GPU nsys exports tests/unit/test_nsys_real_exports.py reads (run on the GPU machine).

For each capture mode asked for, boot ONE vLLM server under nsys through the project's own
launcher (`ProcessLauncher(profiler="nsys")`), capture the workload twice on it (repeats:
each capture has its own report), and copy the first capture's SQLite export to
`<out>/nsys-gpu-<nsys version>-<mode>.sqlite`, with `<same name>.json` beside it saying what
made it (read by the test: nsys_version, layers, max_tokens, mode, ...).

    python3 scripts/make_gpu_nsys_exports.py --model /tmp/qwen3-4l --layers 4 --out $OUT \
        [--nsys /opt/nvidia/nsight-compute/2025.3.1/host/target-linux-x64/nsys] [--modes cuda-range session]

scripts/make-gpu-nsys-exports.sh sets up the environment (vLLM bundle, libdw, model) first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from pytest_vllm_profile.capture import make_capture
from pytest_vllm_profile.launchers.base import ServerSpec
from pytest_vllm_profile.launchers.process import ProcessLauncher
from pytest_vllm_profile.workload import Workload

SERVED_NAME = "tiny"
PROMPT = "What is the capital of France?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (make_model.py), served with --load-format dummy")
    parser.add_argument("--layers", type=int, required=True, help="its decoder layers (what the test expects)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--python", default=sys.executable, help="interpreter that has vLLM")
    parser.add_argument("--nsys", default=None, help="nsys executable (default: PATH / install folders)")
    parser.add_argument("--modes", nargs="+", default=["cuda-range", "session"])
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--captures", type=int, default=2)
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--eager", action="store_true", help="--enforce-eager (faster boot, no CUDA graphs)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for mode in args.modes:
        try:
            made = make_one(args, mode)
            print(f"make_gpu_nsys_exports: {mode}: wrote {made}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report every mode, fail at the end
            failures += 1
            print(f"make_gpu_nsys_exports: {mode} FAILED: {type(exc).__name__}: {exc}", flush=True)
    return 1 if failures else 0


def make_one(args: argparse.Namespace, mode: str) -> Path:
    trace_dir = Path(f"/tmp/nsys-gpu-traces/{mode}")
    shutil.rmtree(trace_dir, ignore_errors=True)
    server_args: tuple[str, ...] = (
        "--load-format",
        "dummy",
        "--max-model-len",
        str(args.max_model_len),
        "--gpu-memory-utilization",
        "0.5",
    )
    server_args += ("--enforce-eager",) if args.eager else ()
    spec = ServerSpec(
        model=args.model,
        served_model_name=SERVED_NAME,
        server_args=server_args,
        profiler="nsys",
        env={"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
        trace_dir=trace_dir,
        health_timeout_s=900,
        log_path=args.out / f"server-{mode}.log",
    )
    launcher = ProcessLauncher(spec, python=args.python, nsys=args.nsys, nsys_mode=mode, nsys_report_timeout_s=600)
    t0 = time.monotonic()
    server = launcher.start()
    boot_s = time.monotonic() - t0
    try:
        workload = Workload(model=SERVED_NAME, prompts=(PROMPT,), max_tokens=args.max_tokens, warmup_requests=1)
        results = []
        for _ in range(args.captures):
            results.append(make_capture(server, workload, launcher=launcher, timeout_s=600).run())
    finally:
        launcher.stop()
    assert launcher.nsys_control is not None and launcher.nsys_control.tool is not None
    sqlites = [next(p for p in r.trace_files if p.suffix == ".sqlite") for r in results]
    version = launcher.nsys_control.tool.version_string
    target = args.out / f"nsys-gpu-{version}-{mode}.sqlite"
    shutil.copyfile(sqlites[0], target)
    with sqlite3.connect(target) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        has_kernels = "CUPTI_ACTIVITY_KIND_KERNEL" in tables
        kernels = con.execute('SELECT COUNT(*) FROM "CUPTI_ACTIVITY_KIND_KERNEL"').fetchone()[0] if has_kernels else 0
    description = {
        "made_by": "scripts/make_gpu_nsys_exports.py",
        "mode": mode,
        "capture": launcher.nsys_control.describe(),
        "nsys_version": version,
        "nsys_path": launcher.nsys_control.tool.path,
        "vllm_version": server.vllm_version,
        "model": Path(args.model).name,
        "layers": args.layers,
        "max_tokens": args.max_tokens,
        "prompt": PROMPT,
        "server_args": list(server_args),
        "captures": [str(p) for p in sqlites],
        "kernels": kernels,
        "boot_s": round(boot_s, 1),
        "size_bytes": target.stat().st_size,
    }
    target.with_suffix(".json").write_text(json.dumps(description, indent=1) + "\n")
    return target


if __name__ == "__main__":
    sys.exit(main())
