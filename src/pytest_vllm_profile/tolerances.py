"""How far a time may move before it is a regression (`Tolerances`), the comparator's settings.

Split from comparator.py (which re-exports it) to keep that module readable; the statistical
rule's settings (alpha, min_effect, sample_noise_multiplier) come from significance.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import VllmProfileError
from .significance import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, DEFAULT_NOISE_MULTIPLIER, DecisionRule


@dataclass
class Tolerances:
    """How far a time may move before it is a regression. Defaults suit H100 decode steps.

    A time metric fails when |candidate - baseline| > max(tolerance * baseline, floor), where
    tolerance = max(rel_time, noise_multiplier * spread) and spread is the larger relative
    spread (max-min)/median of that metric over the baseline's and the candidate's repeats.
    """

    rel_time: float = 0.02  # 2 %: same-config H100 runs differ by ~0.2-0.5 % per step kind
    abs_floor_us: float = 5.0  # per kernel / per layer (µs per step): small kernels jitter by µs
    step_abs_floor_us: float = 20.0  # per step kind median step time
    total_abs_floor_us: float = 100.0  # total kernel time of the profile
    # A single kernel's or layer's time fails only when its move is also at least this share of
    # its step's time: across two boots of the same H100 server, FlashAttention's decode time moved
    # 3.85 % (13 µs, 0.2 % of the step) while the step moved -0.14 %; such moves are noise, and a
    # real slowdown of one kernel large enough to matter shows in the step time too.
    kernel_step_share: float = 0.005
    noise_multiplier: float = 3.0  # noise of k * spread is tolerated when larger than rel_time
    drift_share: float = 0.01  # a new / missing kernel fails at >= 1 % of a step's GPU time
    fail_on_drift: bool = True
    # ---- user-facing latency and step overhead (issue 12): a latency / throughput metric fails
    # when it moves more than max(latency_rel_time, rel_time, noise_multiplier * run-to-run spread)
    # and more than the floor. 10 %: client-side timings also carry the client's and the host's
    # jitter (ITL medians of 0-15 ms between runs on a shared 2-core machine, timed_pass.py), so
    # they are held looser than GPU kernel time. On the H200 (five boots, below) TPOT p50 moved at
    # most 1.4 % between boots, and e2e 5.1 % at p50 (9.7 % at p90 with a slow first repeat).
    latency_rel_time: float = 0.10
    latency_abs_floor_ms: float = 1.0  # TPOT/ITL (and the least for TTFT/e2e): a client timestamp's jitter
    # TTFT and e2e also hold the host's request handling (HTTP, tokenize, schedule, detokenize),
    # which moves by milliseconds between server boots, not by a share of the GPU work: five fresh
    # boots of one H200 config (tests/data/h200-seed-reps, Qwen3-8B shape, 7-token prompt) had
    # TTFT p50 16.3-20.5 ms around a 4.9 ms prefill step (boot-to-boot moves up to 4.1 ms at p50,
    # 6.7 ms at p90; e2e up to 3.2 / 5.9 ms) while TPOT stayed at 4.99-5.06 ms. The 1.0 ms floor
    # failed one of 20 ordered boot pairs (TTFT +25.3 %); this floor passes all 20 and is below
    # what a real regression moved: TRITON_ATTN TTFT +11.5-18.3 ms, e2e +9.7-15.6 ms; --enforce-eager
    # TTFT +37-44 ms (benchmarks/RESULTS.md "H200 same-config runs"). 8 ms: above the widest rise at
    # any judged percentile (6.7 ms) without the spread term's help; the sweep gave 0/20 and the same
    # detections from 6 to 12 ms. Past 80 ms of TTFT/e2e the 10 % above is the larger and decides.
    latency_host_floor_ms: float = 8.0
    # Metrics with samples (step and layer times, latencies) are judged by significance.py instead:
    # a regression is significant at `alpha` and at least `min_effect` (or the µs floor) big.
    alpha: float = DEFAULT_ALPHA
    min_effect: float = DEFAULT_MIN_EFFECT
    # ... and at least this many sigmas of the step-to-step noise the samples show (significance.py);
    # kernels, which have no per-step samples, get it as a µs floor from their step's noise.
    sample_noise_multiplier: float = DEFAULT_NOISE_MULTIPLIER

    def decision_rule(self) -> DecisionRule:
        return DecisionRule(alpha=self.alpha, min_effect=self.min_effect, noise_multiplier=self.sample_noise_multiplier)

    @classmethod
    def from_options(cls, **options: Any) -> Tolerances:
        """Build from plugin options / ini values; None (option not given) keeps the default."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise VllmProfileError(
                f"unknown tolerance option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for name, value in options.items():
            if value is None:
                continue
            if name == "fail_on_drift":
                if isinstance(value, str):
                    if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise VllmProfileError(f"tolerance fail_on_drift={value!r} must be true or false")
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                values[name] = bool(value)
                continue
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise VllmProfileError(f"tolerance {name}={value!r} must be a number") from None
        # A relative tolerance the user gives is also the smallest shift the statistical rule counts.
        if "rel_time" in values and "min_effect" not in values:
            values["min_effect"] = values["rel_time"]
        return cls(**values)

    def __post_init__(self) -> None:
        for name in (
            "rel_time",
            "abs_floor_us",
            "step_abs_floor_us",
            "total_abs_floor_us",
            "noise_multiplier",
            "drift_share",
            "min_effect",
            "sample_noise_multiplier",
            "latency_rel_time",
            "latency_abs_floor_ms",
            "latency_host_floor_ms",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise VllmProfileError(f"tolerance {name}={value!r} must be a number >= 0")
        if not 0 < self.alpha < 1:
            raise VllmProfileError(f"tolerance alpha={self.alpha!r} must be between 0 and 1 (e.g. 0.01)")
