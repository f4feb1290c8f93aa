"""Calibration of the statistical decision rule (significance.py) on real traces.

False alarms: every real same-config pair (tests/data H100 reps; the six real vLLM CPU reps in
tests/data/cpu-reps as single profiles and as 3-vs-3 combined baselines, the default repeats;
the CPU timed pass's three runs of per-request latencies). Detection: the same real data with an
injected slowdown of the candidate's decode steps (all kernels, the GEMM class, one layer) or of
its latency samples, at 1, 2, 3 and 5 %, over a grid of (alpha, min_effect).
H200 (tests/data/h200-seed-reps, five fresh boots of one config): the profile verdict over the 20
ordered run pairs (rep0 vs rep0, and the default 3 repeats combined), the latency verdict of the
timed passes over the same pairs, and the real regressions (--enforce-eager, TRITON_ATTN) against
each run, for the default tolerances and a sweep of `latency_host_floor_ms`.
Usage: PYTHONPATH=src python benchmarks/bench_calibration.py [--quick]
"""

from __future__ import annotations

import copy
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.codec import from_builtins
from pytest_vllm_profile.comparator import Tolerances, compare_summaries
from pytest_vllm_profile.comparison import Comparison
from pytest_vllm_profile.latency import TimedPassResult
from pytest_vllm_profile.repeats import combine_repeats
from pytest_vllm_profile.samples import step_samples
from pytest_vllm_profile.significance import DecisionRule, RepeatSamples, compare_samples, relative_noise
from pytest_vllm_profile.summary import ProfileSummary

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
SLOWDOWNS = (0.01, 0.02, 0.03, 0.05)
CPU_SLOWDOWNS = (0.05, 0.1, 0.25, 0.5)  # what a CPU runner's noise lets through
# (alpha, min_effect, noise_multiplier): the chosen defaults first, then one setting changed at a time
GRID = [
    (0.01, 0.01, 4.0),
    (0.05, 0.01, 4.0),
    (0.01, 0.005, 4.0),
    (0.01, 0.015, 4.0),
    (0.01, 0.01, 3.0),
    (0.01, 0.01, 5.0),
]
GPU_PAIRS = {  # name -> (files, compared step kinds)
    "base": (("base-rep0.pt.trace.json.gz", "base-rep1.pt.trace.json.gz"), None),
    "h100-seed": (("h100-seed-rep0.rank0.pt.trace.json.gz", "h100-seed-rep1.rank0.pt.trace.json.gz"), None),
    "h100-batch4": (
        ("h100-batch4-rep0.rank0.pt.trace.json.gz", "h100-batch4-rep1.rank0.pt.trace.json.gz"),
        ("decode",),
    ),
}


def _refresh_decode_stats(s: ProfileSummary) -> None:
    decode = [st for st in s.steps if st.kind == "decode"]
    stats = s.step_kinds["decode"]
    stats.median_op_time_us = statistics.median(st.op_time_us for st in decode)
    stats.mean_op_time_us = statistics.fmean(st.op_time_us for st in decode)
    stats.min_op_time_us = min(st.op_time_us for st in decode)
    stats.max_op_time_us = max(st.op_time_us for st in decode)
    if decode and decode[0].layers:
        stats.median_layer_time_us = [
            statistics.median(st.layers[j].time_us for st in decode) for j in range(len(decode[0].layers))
        ]


def slow_down(summary: ProfileSummary, factor: float, where: str) -> ProfileSummary:
    """`summary` with its decode steps slower: "all" kernels, the "gemm" class, or "layer" 0's time."""
    out = copy.deepcopy(summary)
    decode = [st for st in out.steps if st.kind == "decode"]
    added = 0.0
    if where in ("all", "gemm"):
        for k in out.kernels:
            kind = k.per_step_kind.get("decode")
            if kind is None or (where == "gemm" and k.kernel_class != "gemm"):
                continue
            extra = kind.total_us * (factor - 1)
            kind.total_us += extra
            kind.mean_us *= factor
            k.total_us += extra
            added += extra
    for st in decode:
        if where == "all":
            extra = st.op_time_us * (factor - 1)
            for layer in st.layers:
                layer.time_us *= factor
        elif where == "gemm":  # the class's added time spread evenly over the decode steps
            extra = added / len(decode)
        else:
            extra = st.layers[0].time_us * (factor - 1)
            st.layers[0].time_us += extra
            added += extra
        st.op_time_us += extra
    out.total_kernel_us += added if where != "all" else sum(st.op_time_us for st in decode) * (1 - 1 / factor)
    _refresh_decode_stats(out)
    return out


def fails(
    base: list[ProfileSummary], cand: list[ProfileSummary], tol: Tolerances, kinds: tuple[str, ...] | None
) -> bool:
    b, bs = combine_repeats(base, kinds) if len(base) > 1 else (base[0], None)
    c, cs = combine_repeats(cand, kinds) if len(cand) > 1 else (cand[0], None)
    return compare_summaries(b, c, tol, bs, cs, kinds).verdict == "fail"


H200 = DATA / "h200-seed-reps"
HOST_FLOORS_MS = (
    1.0,
    4.0,
    6.0,
    8.0,
    10.0,
    12.0,
    14.0,
    16.0,
)  # 1.0: the rule before latency_host_floor_ms (= the 1 ms floor)
LATENCY_PREFIXES = ("latency.", "throughput.")


def latency_alarms(c: Comparison) -> list[str]:
    return [f.metric for f in c.regressions if f.metric.startswith(LATENCY_PREFIXES)]


def profile_alarms(c: Comparison) -> list[str]:
    """Failing findings of the profiled pass: steps, kernels (failing drift included), layers, step overhead."""
    return [f.metric for f in c.regressions if not f.metric.startswith(LATENCY_PREFIXES)]


def h200_runs() -> dict:
    """The H200 same-config runs and real regressions, judged as the plugin judges them."""
    data = json.loads((H200 / "h200-seed-runs.json").read_text())
    runs = [r["run"] for r in data["runs"]]
    reps = [[summarize_path(H200 / f"{run}-rep{k}.rank0.pt.trace.json.gz") for k in range(3)] for run in runs]
    combined = [combine_repeats(r) for r in reps]
    timed = [from_builtins(r["timed_pass"], TimedPassResult) for r in data["runs"]]
    regressions = {  # schema-v1 summaries as the results files hold them, upgraded on read
        name: (from_builtins(d["summary"], ProfileSummary), from_builtins(d["timed_pass"], TimedPassResult))
        for name, d in data["detection"].items()
    }
    pairs = list(itertools.permutations(range(len(runs)), 2))
    out: dict = {"runs": {r["run"]: r["step"] for r in data["runs"]}}
    tol = Tolerances()
    single = [compare_summaries(reps[i][0], reps[j][0], tol) for i, j in pairs]
    three = [compare_summaries(combined[i][0], combined[j][0], tol, combined[i][1], combined[j][1]) for i, j in pairs]
    for label, comps in (("profile_single_rep0", single), ("profile_3v3", three)):
        alarms = [
            f"{runs[i]}->{runs[j]}: {profile_alarms(c)}"
            for (i, j), c in zip(pairs, comps, strict=True)
            if c.verdict == "fail"
        ]
        out[f"false_alarms_{label}"] = f"{len(alarms)}/{len(pairs)}"
        out[f"false_alarm_names_{label}"] = alarms[:6]
    # The levels the floor is chosen from: each run's percentiles, and the largest rise between two
    # boots (ordered pairs) against the smallest rise of a real regression over the five boots.
    levels: dict = {}
    for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
        for p in (50.0, 90.0):
            values = [t.distribution(metric).percentile(p) for t in timed]  # type: ignore[union-attr]
            rises = {
                name: min(t.distribution(metric).percentile(p) - v for v in values)  # type: ignore[union-attr]
                for name, (_, t) in regressions.items()
            }
            levels[f"{metric}.p{p:g}"] = (
                f"runs {', '.join(f'{v:.2f}' for v in values)} ms; largest boot-to-boot rise "
                f"{max(values[j] - values[i] for i, j in pairs):.2f} ms; smallest rise of "
                + ", ".join(f"{name} {rise:+.2f}" for name, rise in rises.items())
            )
    out["latency_levels"] = levels
    out["latency_sweep"] = []
    for floor in HOST_FLOORS_MS:
        tol = Tolerances(latency_host_floor_ms=floor)
        row: dict = {"latency_host_floor_ms": floor}
        alarms = []
        for i, j in pairs:
            c = compare_summaries(
                combined[i][0], combined[j][0], tol, combined[i][1], combined[j][1], None, timed[i], timed[j]
            )
            if latency_alarms(c):
                alarms.append(f"{runs[i]}->{runs[j]}: {', '.join(latency_alarms(c))}")
        row["false_alarms_latency"] = f"{len(alarms)}/{len(pairs)}"
        row["false_alarm_names_latency"] = alarms[:6]
        for name, (summary, cand_timed) in regressions.items():
            found: dict[str, int] = {}
            for i in range(len(runs)):
                c = compare_summaries(combined[i][0], summary, tol, combined[i][1], None, None, timed[i], cand_timed)
                metrics = {m.split(".")[1] for m in latency_alarms(c)}
                for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "output_tokens_per_s"):
                    found[key] = found.get(key, 0) + (key in metrics)
                found["any_latency"] = found.get("any_latency", 0) + bool(metrics)
                found["profile"] = found.get("profile", 0) + bool(profile_alarms(c))
            row[f"detect_{name}"] = {k: f"{v}/{len(runs)}" for k, v in found.items()}
        out["latency_sweep"].append(row)
        print(json.dumps(row), flush=True)
    return out


def main(quick: bool) -> dict:
    gpu = {name: ([summarize_path(DATA / f) for f in files], kinds) for name, (files, kinds) in GPU_PAIRS.items()}
    cpu = [ProfileSummary.load(p) for p in sorted((DATA / "cpu-reps").glob("cpu-rep*.summary.json"))]
    latency = json.loads((DATA / "cpu-reps" / "cpu-latency.json").read_text())
    cpu_splits = [
        (list(a), [i for i in range(len(cpu)) if i not in a])
        for a in itertools.combinations(range(len(cpu)), 3)
        if 0 in a
    ]  # 10 distinct 3-vs-3 splits
    # same-config trials: (label, baseline repeats, candidate repeats, compared kinds), both directions
    trials: list[tuple[str, list[ProfileSummary], list[ProfileSummary], tuple[str, ...] | None]] = []
    for name, (reps, kinds) in gpu.items():
        trials += [
            (f"{name} rep0->rep1", [reps[0]], [reps[1]], kinds),
            (f"{name} rep1->rep0", [reps[1]], [reps[0]], kinds),
        ]
    cpu_single = [
        (f"cpu rep{i}->rep{j}", [cpu[i]], [cpu[j]], None) for i, j in itertools.permutations(range(len(cpu)), 2)
    ]
    cpu_combined = [(f"cpu {a}->{b}", [cpu[i] for i in a], [cpu[i] for i in b], None) for a, b in cpu_splits]
    cpu_combined += [(f"cpu {b}->{a}", [cpu[i] for i in b], [cpu[i] for i in a], None) for a, b in cpu_splits]
    results: dict = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "grid": [],
    }
    grid = GRID if not quick else GRID[:1]
    for alpha, min_effect, noise_multiplier in grid:
        tol = Tolerances(alpha=alpha, min_effect=min_effect, sample_noise_multiplier=noise_multiplier)
        row: dict = {"alpha": alpha, "min_effect": min_effect, "noise_multiplier": noise_multiplier}
        rule = DecisionRule(alpha=alpha, min_effect=min_effect, noise_multiplier=noise_multiplier)
        for label, group in (("gpu", trials), ("cpu-single", cpu_single), ("cpu-3v3", cpu_combined)):
            alarms = [t[0] for t in group if fails(t[1], t[2], tol, t[3])]
            row[f"false_alarms_{label}"] = f"{len(alarms)}/{len(group)}"
            row[f"false_alarm_names_{label}"] = alarms[:6]
        for where in ("all", "gemm", "layer"):
            for x in SLOWDOWNS:
                gpu_hits = [fails(t[1], [slow_down(c, 1 + x, where) for c in t[2]], tol, t[3]) for t in trials]
                row[f"detect_gpu_{where}_{int(100 * x)}pct"] = f"{sum(gpu_hits)}/{len(gpu_hits)}"
            for x in CPU_SLOWDOWNS:
                cpu_hits = [fails(t[1], [slow_down(c, 1 + x, where) for c in t[2]], tol, t[3]) for t in cpu_combined]
                row[f"detect_cpu3v3_{where}_{int(100 * x)}pct"] = f"{sum(cpu_hits)}/{len(cpu_hits)}"
        for metric in ("tpot_ms", "e2e_ms", "ttft_ms"):
            runs = [[r[metric] for r in run["requests"] if r[metric] is not None] for run in latency["runs"]]
            pairs = list(itertools.permutations(range(len(runs)), 2))
            same = sum(compare_samples(runs[i], runs[j], rule).outcome == "regression" for i, j in pairs)
            hits = {
                int(100 * x): sum(
                    compare_samples(runs[i], [v * (1 + x) for v in runs[j]], rule).outcome == "regression"
                    for i, j in pairs
                )
                for x in SLOWDOWNS
            }
            row[f"latency_{metric}"] = f"false {same}/{len(pairs)}, detect " + ", ".join(
                f"{k}% {v}/{len(pairs)}" for k, v in hits.items()
            )
        # Pseudo-repeats: the default 3 repeats a side drawn (with replacement) from a real pair's decode
        # steps, 200 seeded trials each; within-run noise only (the real pairs above carry run-to-run).
        rng = np.random.default_rng(7)
        for x in (0.0, *SLOWDOWNS):
            pseudo_hits = total = 0
            for reps, _ in gpu.values():
                steps = [np.array([st.op_time_us for st in r.steps if st.kind == "decode"]) for r in reps]
                for _ in range(200):
                    b = RepeatSamples([rng.choice(steps[0], len(steps[0])).tolist() for _ in range(3)])
                    c = RepeatSamples([(rng.choice(steps[1], len(steps[1])) * (1 + x)).tolist() for _ in range(3)])
                    pseudo_hits += compare_samples(b, c, rule).outcome == "regression"
                    total += 1
            row[f"pseudo3v3_gpu_decode_{int(100 * x)}pct"] = f"{pseudo_hits}/{total}"
        results["grid"].append(row)
        print(json.dumps(row), flush=True)

    # Noise the samples show: within-run (step-to-step) and between-run (repeat medians), decode steps.
    def noise(reps: list[ProfileSummary]) -> str:
        medians = [r.step_kinds["decode"].median_op_time_us for r in reps]
        within = statistics.median(
            statistics.pstdev(d := [s.op_time_us for s in r.steps if s.kind == "decode"]) / statistics.median(d)
            for r in reps
        )
        return (
            f"step-to-step {100 * within:.2f}%, repeat medians {min(medians):.0f}-{max(medians):.0f} µs "
            f"({100 * (max(medians) - min(medians)) / min(medians):.1f}% apart)"
        )

    results["noise"] = {"cpu": noise(cpu), **{name: noise(reps) for name, (reps, _) in gpu.items()}}
    results["h200"] = h200_runs()
    # How far apart unchanged CPU runs' levels are, in units of their own step-to-step noise.
    results["cpu_level_shift_in_sigmas"] = round(
        max(
            abs(
                compare_samples(
                    step_samples(cpu[i], None, "decode") or (), step_samples(cpu[j], None, "decode") or ()
                ).estimate
                or 0.0
            )
            / max(
                relative_noise(step_samples(cpu[i], None, "decode") or ()),
                relative_noise(step_samples(cpu[j], None, "decode") or ()),
            )
            for i, j in itertools.combinations(range(len(cpu)), 2)
        ),
        2,
    )
    # Speed: one comparison of the real H100 seed pair, and of 3-vs-3 combined CPU baselines.
    tol = Tolerances()
    for label, (base_side, cand_side, k) in {
        "h100-seed single": ([gpu["h100-seed"][0][0]], [gpu["h100-seed"][0][1]], None),
        "cpu 3v3": (cpu[:3], cpu[3:], None),
    }.items():
        bb, bs = combine_repeats(base_side) if len(base_side) > 1 else (base_side[0], None)
        cc, cs = combine_repeats(cand_side) if len(cand_side) > 1 else (cand_side[0], None)
        t0 = time.perf_counter()
        for _ in range(5):
            compare_summaries(bb, cc, tol, bs, cs, k)
        results[f"compare_ms_{label}"] = round(1e3 * (time.perf_counter() - t0) / 5, 1)
    print(json.dumps({k: v for k, v in results.items() if k != "grid"}, indent=1))
    return results


if __name__ == "__main__":
    out = main("--quick" in sys.argv)
    Path("/tmp/bench_calibration.json").write_text(json.dumps(out, indent=1))
