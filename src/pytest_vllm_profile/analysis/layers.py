"""Decoder-layer detection ("layer peaks"): per-layer time inside each step.

Two methods:

- `module` — eager traces recorded with stack (`with_stack`) hold one
  `nn.Module: <X>DecoderLayer_<i>` python_function event per layer and step. A GPU kernel
  belongs to layer i when the CPU call that launched it (a cuda_runtime/cuda_driver event
  with the kernel's `correlation` id) lies inside that module event on the same thread.
  On CPU-only traces there are no kernels: a layer's time is the sum of the top-level
  cpu_ops inside the module event (see `cpu_ops`).
- `kernel_pattern` — with torch.compile + CUDA graphs there are no module events; the
  layers are recovered from the GPU kernel sequence of each step. Some kernel (by short
  name) runs exactly L times in every step, L the same for all steps: one per layer.
  Attention-class kernels are preferred. The step's kernel sequence is cut into L periods
  at those launches, shifted back so a period starts where a layer starts: the offset is
  how far back the kernels before the first layer's launch match those before every other
  layer's, compared by kernel class (before layer 0 come the embedding and input
  preparation instead). Every layer
  gets the step's modal period length, so the last one stops before the LM head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..events import Category, Trace
from ..summary import LayerMethod
from .cpu_ops import top_level_mask
from .intervals import enclosing
from .kernels import classes, is_attention_math, short_names

DECODER_LAYER_MODULE = re.compile(r"^nn\.Module: (\w*DecoderLayer)_(\d+)$")
_DECODER_LAYER_TEST = re.compile(r"^nn\.Module: \w*DecoderLayer_\d+$")
_LAUNCH_CATEGORIES = (Category.CUDA_RUNTIME.value, Category.CUDA_DRIVER.value)


@dataclass
class LayerDetection:
    method: LayerMethod | None
    layer_count: int
    # one row per (step, layer): columns step, layer, time_us, kernel_count
    timings: pd.DataFrame
    marker: str | None = None  # kernel_pattern: the short name that repeats once per layer
    notes: list[str] = field(default_factory=list)

    def of_step(self, step: int) -> pd.DataFrame:
        return self.timings[self.timings["step"] == step]


def _empty_timings() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": pd.Series(dtype="int64"),
            "layer": pd.Series(dtype="int64"),
            "time_us": pd.Series(dtype="float64"),
            "kernel_count": pd.Series(dtype="int64"),
        }
    )


def _finish(
    method: LayerMethod | None, timings: pd.DataFrame, notes: list[str], marker: str | None = None
) -> LayerDetection:
    if timings.empty:
        return LayerDetection(None, 0, _empty_timings(), marker, notes)
    per_step = timings.groupby("step")["layer"].nunique()
    count = int(per_step.mode().iloc[0])
    if per_step.nunique() > 1:
        notes.append(f"layers per step differ between steps ({sorted(set(per_step.tolist()))}); reporting {count}")
    return LayerDetection(method, count, timings.sort_values(["step", "layer"]).reset_index(drop=True), marker, notes)


def _module_events(ev: pd.DataFrame) -> pd.DataFrame:
    py = ev[(ev["category"] == Category.PYTHON.value).to_numpy()]
    # python_function names repeat heavily: match each distinct name once, then select by membership
    names = pd.unique(py["name"])
    wanted = [n for n in names if isinstance(n, str) and _DECODER_LAYER_TEST.match(n)]
    mods = py[py["name"].isin(wanted).to_numpy()]
    if mods.empty:
        return mods
    layer = mods["name"].str.extract(DECODER_LAYER_MODULE)[1].astype(np.int64)
    return mods.assign(layer=layer.to_numpy())


def _inside_modules(mods: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """For each row of `points`, the layer and step of the module event around its start (same thread).

    Module events of one thread do not overlap (layers run one after another), so a
    searchsorted over their start times finds the candidate; the end bound confirms it.
    """
    out = []
    for (pid, tid), m in mods.groupby(["pid", "tid"], sort=False):  # a handful of threads
        m = m.sort_values("start_us")
        p = points[(points["pid"] == pid) & (points["tid"] == tid)]
        if p.empty:
            continue
        pos = enclosing(m["start_us"].to_numpy(), m["end_us"].to_numpy(), p["start_us"].to_numpy())
        ok = pos >= 0
        out.append(p[ok].assign(layer=m["layer"].to_numpy()[pos[ok]], mod_step=m["step"].to_numpy()[pos[ok]]))
    if not out:
        return points.iloc[0:0].assign(layer=pd.Series(dtype="int64"), mod_step=pd.Series(dtype="int64"))
    return pd.concat(out)


class LayerDetector:
    """Per-layer times per step; call after `StepDetector.detect` filled the `step` column."""

    def detect(self, trace: Trace, timing_domain: str = "gpu", method: str | None = None) -> LayerDetection:
        """`method` forces "module" or "kernel_pattern"; by default module events win when present."""
        ev = trace.events
        notes: list[str] = []
        if timing_domain == "cpu":
            return self.by_module_cpu(ev, notes)
        if method in (None, "module"):
            result = self.by_module_gpu(ev, notes)
            if result.method is not None or method == "module":
                return result
        return self.by_kernel_pattern(ev, notes)

    # -- module mode -------------------------------------------------------------------
    def by_module_gpu(self, ev: pd.DataFrame, notes: list[str]) -> LayerDetection:
        mods = _module_events(ev)
        if mods.empty:
            notes.append("no nn.Module DecoderLayer events (needs eager mode and with_stack)")
            return _finish(None, _empty_timings(), notes)
        launches = ev[ev["category"].isin(_LAUNCH_CATEGORIES) & (ev["correlation"] >= 0)]
        tagged = _inside_modules(mods, launches[["pid", "tid", "start_us", "correlation"]])
        kernels = ev[(ev["category"] == Category.KERNEL.value) & (ev["step"] >= 0)][["correlation", "dur_us", "step"]]
        joined = kernels.merge(tagged[["correlation", "layer"]], on="correlation", how="inner")
        timings = joined.groupby(["step", "layer"])["dur_us"].agg(time_us="sum", kernel_count="count").reset_index()
        if timings.empty:
            notes.append("DecoderLayer module events found but no kernel launched inside them")
        return _finish("module", timings, notes)

    def by_module_cpu(self, ev: pd.DataFrame, notes: list[str]) -> LayerDetection:
        mods = _module_events(ev)
        if mods.empty:
            notes.append("no nn.Module DecoderLayer events: no layers on this CPU-only trace")
            return _finish(None, _empty_timings(), notes)
        ops = ev[ev["category"] == Category.CPU_OP.value]
        top = ops[top_level_mask(ops)]
        tagged = _inside_modules(mods, top[["pid", "tid", "start_us", "dur_us"]])
        tagged = tagged[tagged["mod_step"] >= 0]
        timings = (
            tagged.rename(columns={"mod_step": "step"})
            .groupby(["step", "layer"])["dur_us"]
            .agg(time_us="sum", kernel_count="count")
            .reset_index()
        )
        notes.append("layer times on the CPU clock: top-level cpu_ops inside each DecoderLayer module event")
        return _finish("module", timings, notes)

    # -- kernel-pattern mode -----------------------------------------------------------
    def by_kernel_pattern(self, ev: pd.DataFrame, notes: list[str]) -> LayerDetection:
        kern = ev[(ev["category"] == Category.KERNEL.value) & (ev["step"] >= 0)]
        if kern.empty:
            notes.append("no kernels inside steps: no layers")
            return _finish(None, _empty_timings(), notes)
        kern = kern.sort_values(["step", "start_us"], kind="stable")
        short = short_names(kern["name"])
        marker, count = self._marker(kern, short)
        if marker is None:
            notes.append("no kernel runs the same number of times (>1) in every step: layers not recovered")
            return _finish(None, _empty_timings(), notes)
        codes, _ = pd.factorize(short)
        marker_code = int(codes[(short == marker).to_numpy().argmax()])
        class_codes, _ = pd.factorize(classes(kern["name"]))
        steps = kern["step"].to_numpy()
        dur = kern["dur_us"].to_numpy()
        bounds = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1], True])
        rows = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=False):  # one iteration per step
            rows.extend(self._cut_step(int(steps[a]), codes[a:b], class_codes[a:b], dur[a:b], marker_code))
        timings = pd.DataFrame(rows, columns=["step", "layer", "time_us", "kernel_count"])
        notes.append(f"layers recovered from the kernel sequence: {marker} runs {count} times in every step")
        return _finish("kernel_pattern", timings, notes, marker)

    @staticmethod
    def _marker(kern: pd.DataFrame, short: pd.Series) -> tuple[str | None, int]:
        per_step = pd.crosstab(short.to_numpy(), kern["step"].to_numpy())
        lo, hi = per_step.min(axis=1), per_step.max(axis=1)
        steady = per_step.index[(lo == hi) & (lo > 1)]
        if not len(steady):
            return None, 0
        cls = dict(zip(short.to_numpy(), classes(kern["name"]).to_numpy(), strict=False))
        totals = kern.groupby(short.to_numpy())["dur_us"].sum()

        # attention first (the KV-cache write is attention-class too but rank it below the math kernel),
        # then the most time: the layer's heaviest repeating kernel
        def rank(name: str) -> tuple[int, int, float]:
            is_attn = cls.get(name) == "attention"
            return (int(is_attn), int(is_attention_math(name, cls.get(name, ""))), float(totals.get(name, 0.0)))

        best = max(steady, key=rank)
        return str(best), int(lo[best])

    @staticmethod
    def _cut_step(
        step: int, codes: np.ndarray, class_codes: np.ndarray, dur: np.ndarray, marker_code: int
    ) -> list[tuple[int, int, float, int]]:
        pos = np.flatnonzero(codes == marker_code)
        n_layers = len(pos)
        if n_layers < 2:
            return []
        gaps = np.diff(pos)
        period = int(np.bincount(gaps).argmax())
        # How far back the layer start lies: the kernels before layer 0's marker that match those
        # before every other layer's. Kernel classes are compared, not names: torch.compile gives
        # layer 0 its own fused kernels (`triton_red_fused_1` where later layers run
        # `triton_red_fused_3`) doing the same job, while the embedding before layer 0 differs in kind.
        offset = 0
        for j in range(1, period):
            if pos[0] - j < 0:
                break
            if not np.all(class_codes[pos[1:] - j] == class_codes[pos[0] - j]):
                break
            offset = j
        starts = pos - offset
        ends = np.r_[starts[1:], min(starts[-1] + period, len(codes))]
        csum = np.r_[0.0, np.cumsum(dur)]
        times = csum[ends] - csum[starts]
        return [(step, i, float(times[i]), int(ends[i] - starts[i])) for i in range(n_layers)]
