"""The per-step samples of a summary (or of the repeats a combined summary was made from).

A single profile's summary holds every step, so its samples are its steps' times (one repeat).
A summary combined from repeats holds per-step medians instead; `RepeatSpread.step_samples_us`
and `layer_samples_us` keep every repeat's samples. A combined summary written before those
fields existed (0.1.0) has none: `None`, and the comparison falls back to the fixed tolerance.
"""

from __future__ import annotations

from .repeats import RepeatSpread
from .significance import RepeatSamples
from .summary import ProfileSummary, StepKind


def _single_profile(spread: RepeatSpread | None) -> bool:
    return spread is None or spread.repeats == 1


def step_samples(summary: ProfileSummary, spread: RepeatSpread | None, kind: StepKind) -> RepeatSamples | None:
    """Step times (µs) of every `kind` step of every repeat, or None when the summary lacks them."""
    if spread is not None and isinstance(spread.step_samples_us, dict) and kind in spread.step_samples_us:
        return RepeatSamples(spread.step_samples_us[kind])
    if _single_profile(spread):
        return RepeatSamples([[s.op_time_us for s in summary.steps if s.kind == kind]])
    return None


def layer_samples(
    summary: ProfileSummary, spread: RepeatSpread | None, kind: StepKind, layer: int
) -> RepeatSamples | None:
    """Times (µs) of layer `layer` in every `kind` step of every repeat, or None when not kept."""
    if spread is not None and isinstance(spread.layer_samples_us, dict) and kind in spread.layer_samples_us:
        return RepeatSamples(
            [[step[layer] for step in repeat if len(step) > layer] for repeat in spread.layer_samples_us[kind]]
        )
    if _single_profile(spread):
        return RepeatSamples(
            [[s.layers[layer].time_us for s in summary.steps if s.kind == kind and len(s.layers) > layer]]
        )
    return None
