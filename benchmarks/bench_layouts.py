"""Reader memory and time on a large trace in Kineto's line layout vs one event per line.

    python benchmarks/bench_layouts.py [--gb 0.86] [--as-limit-gb 3]

Issue 17: a 0.86 GB trace not in Kineto's line layout (one JSON object per line) took 7.5 GB RSS
and, under an address-space limit, died with SIGSEGV; Kineto's own layout stayed at 345 MB.
Both files here are the real eager trace (tests/data/eager-mixed) replicated in time by
`bench_summarize.build_big_trace`; the second one writes each event as one line (a transformed
real trace). Each read runs `summarize` in its own process (peak RSS = VmHWM), the
one-event-per-line one also under RLIMIT_AS. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_summarize  # noqa: E402

SOURCE = HERE.parent / "tests" / "data" / "eager-mixed.rank0.pt.trace.json.gz"
WORK = Path("/tmp/pytest-vllm-profile-bench")

_READ = """
import re, resource, sys, time
limit = int(sys.argv[2])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pytest_vllm_profile.analysis import summarize
from pytest_vllm_profile.trace import read_trace_set
t = time.perf_counter()
ts = read_trace_set(sys.argv[1])
s = summarize(ts)
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
rank0 = ts.ranks[0]
print(time.perf_counter() - t, hwm // 1024, rank0.metadata.extra["parser"], s.token_steps, len(rank0.events))
"""


def build(gb: float) -> tuple[Path, Path]:
    target = int(gb * (1 << 30))
    kineto = WORK / f"layouts-{gb:g}gb-kineto.rank0.pt.trace.json.gz"
    per_line = WORK / f"layouts-{gb:g}gb-one-event-per-line.rank0.pt.trace.json.gz"
    if not kineto.exists():
        bench_summarize.build_big_trace(SOURCE, target, kineto)
    if not per_line.exists():
        kineto_bytes = bench_summarize._kineto_event_bytes
        bench_summarize._kineto_event_bytes = lambda ev, dumps: dumps(ev)  # one event, one line
        try:
            bench_summarize.build_big_trace(SOURCE, target, per_line)
        finally:
            bench_summarize._kineto_event_bytes = kineto_bytes
    return kineto, per_line


def read(path: Path, as_limit: int) -> str:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _READ, str(path), str(as_limit)], capture_output=True, text=True)
    if proc.returncode:
        return (
            f"| {path.name} | exit {proc.returncode} after {time.perf_counter() - start:.1f} s | | | "
            f"{proc.stderr.strip().splitlines()[-1:]} |"
        )
    secs, hwm, parser, steps, rows = proc.stdout.split()
    return f"| {path.name} | {float(secs):.1f} | {hwm} | {parser} | {steps} steps, {rows} rows |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=0.86)
    ap.add_argument("--as-limit-gb", type=float, default=3.0)
    args = ap.parse_args()
    kineto, per_line = build(args.gb)
    limit = int(args.as_limit_gb * (1 << 30))
    print("| file | seconds (read + summarize) | peak RSS MB | parser | result |\n|---|---|---|---|---|")
    print(read(kineto, 0))
    print(read(per_line, 0))
    print(read(per_line, limit).replace("| layouts", f"| (RLIMIT_AS {args.as_limit_gb:g} GB) layouts", 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
