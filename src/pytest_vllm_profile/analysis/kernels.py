"""Kernel names made readable, kernel classes, and per-kernel statistics (`KernelStats`).

Full kernel names from CUPTI are demangled C++ signatures, often thousands of characters
(`void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<...>>>(...)`).
`short_kernel_name` keeps the function's qualified name only: it drops the return type,
template arguments and the argument list, and looks through generic launch wrappers
(`cutlass::device_kernel<X>`, `enable_sm90_or_later<X>`) to the kernel they wrap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ..summary import KernelKindStats, KernelSummary, StepKind

# Templates that only wrap the real kernel: the short name is the wrapped one's.
_WRAPPERS = (
    "cutlass::device_kernel",
    "cutlass::Kernel",
    "cutlass::Kernel2",
    "enable_sm90_or_later",
    "enable_sm80_to_sm89",
    "enable_sm100_or_later",
)

KERNEL_CLASSES: tuple[str, ...] = ("attention", "gemm", "norm", "communication", "elementwise", "memory", "other")

# Order matters: the first class whose pattern matches wins (an all-reduce fused with a
# norm is communication; a flash "prepare" kernel is still attention work).
_CLASS_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "communication",
        re.compile(
            r"nccl|all_?reduce|cross_device_reduce|all_?gather|reduce_?scatter|custom_ar|alltoall|all_to_all", re.I
        ),
    ),
    ("memory", re.compile(r"^memcpy|^memset|memcpy_kernel", re.I)),
    (
        "attention",
        re.compile(r"flash|attn|attention|fmha|\bmha|paged|reshape_and_cache|flashinfer|mla_|_mla|xformers", re.I),
    ),
    (
        "gemm",
        re.compile(
            r"gemm|gemv|nvjet|cublas|splitkreduce|matmul|_mm\b|wgmma|xmma|cutlass.*sm\d+_|ampere_|sm90_|sm80_|onednn_mm|linear",
            re.I,
        ),
    ),
    ("norm", re.compile(r"norm", re.I)),
    (
        "elementwise",
        re.compile(
            r"elementwise|act_and_mul|silu|gelu|relu|rotary|rope|fill|copy|triton_poi|index|scatter|gather|arange|softmax|mul|add|cat",
            re.I,
        ),
    ),
)


def _strip_nested(text: str) -> tuple[str, list[str]]:
    """Top-level text with <...> and (...) contents removed, plus each top-level template's first argument."""
    out: list[str] = []
    firsts: list[str] = []
    depth_angle = 0
    depth_paren = 0
    arg_buf: list[str] | None = None
    for ch in text:
        if ch == "<" and depth_paren == 0:
            depth_angle += 1
            if depth_angle == 1:
                arg_buf = []
                continue
        elif ch == ">" and depth_paren == 0 and depth_angle > 0:
            depth_angle -= 1
            if depth_angle == 0:
                if arg_buf is not None:
                    firsts.append("".join(arg_buf))
                arg_buf = None
                continue
        elif ch == "(" and depth_angle == 0:
            depth_paren += 1
            continue
        elif ch == ")" and depth_angle == 0 and depth_paren > 0:
            depth_paren -= 1
            continue
        if depth_angle == 0 and depth_paren == 0:
            out.append(ch)
        elif depth_angle >= 1 and arg_buf is not None:
            # first template argument: stop collecting at a top-level comma
            if ch == "," and depth_angle == 1:
                firsts.append("".join(arg_buf))
                arg_buf = None
            else:
                arg_buf.append(ch)
    return "".join(out), firsts


@lru_cache(maxsize=65536)
def short_kernel_name(name: str) -> str:
    """A readable name: `flash::FlashAttnFwdSm90`, `vllm::fused_add_rms_norm_kernel`, `nvjet_sm90_...`."""
    text = name.strip()
    if text.lower().startswith(("memcpy", "memset")):
        return text  # "Memcpy HtoD (Pinned -> Device)": the parentheses are the information
    if "<" not in text and "(" not in text:
        return text
    text = text.replace("(anonymous namespace)", "anon")
    for _ in range(8):  # unwrap wrapper templates, bounded
        top, firsts = _strip_nested(text)
        tokens = [t for t in top.replace("*", " ").split() if t not in ("void", "const", "static", "__global__")]
        if not tokens:
            return name.strip()[:80]
        head = tokens[-1].strip(":")
        # `std::enable_if<...>::type vllm::f<...>(...)` leaves "std::enable_if::type vllm::f": last token wins
        wrapped = next((w for w in _WRAPPERS if head == w or head.endswith("::" + w)), None)
        if wrapped is None or not firsts:
            return head or name.strip()[:80]
        # the wrapped kernel is the wrapper's first template argument (the last top-level template seen)
        text = firsts[-1].strip()
        if text.startswith("typename ") or text.startswith("class "):
            text = text.split(" ", 1)[1]
    return name.strip()[:80]


@lru_cache(maxsize=65536)
def kernel_class(name: str) -> str:
    """One of `KERNEL_CLASSES`, from the kernel's (full or short) name."""
    short = short_kernel_name(name)
    for cls, pattern in _CLASS_PATTERNS:
        if pattern.search(short) or (cls in ("communication", "memory") and pattern.search(name)):
            return cls
    return "other"


def is_attention_math(short_name: str, kernel_cls: str) -> bool:
    """An attention-class kernel doing the attention itself: once per layer and step, the marker
    the step and layer detectors look for. The KV-cache write (reshape_and_cache) and metadata
    preparation are attention-class too but are not it."""
    return kernel_cls == "attention" and "reshape_and_cache" not in short_name and "prepare" not in short_name


def short_names(names: pd.Series) -> pd.Series:
    """`short_kernel_name` over a column, computed once per distinct name."""
    uniq = pd.unique(names)
    mapping = {n: short_kernel_name(n) for n in uniq}
    return names.map(mapping)


def classes(names: pd.Series) -> pd.Series:
    uniq = pd.unique(names)
    mapping = {n: kernel_class(n) for n in uniq}
    return names.map(mapping)


@dataclass
class KernelStats:
    """Per-name statistics over a table of timed events (kernels, or cpu_ops with self time).

    `table` needs columns `name`, `dur_us` and `kind` (the step kind of the event's step,
    "" outside any step). `share` is of the table's total time.
    """

    table: pd.DataFrame

    def summaries(self) -> list[KernelSummary]:
        t = self.table
        if t.empty:
            return []
        dur = t["dur_us"]
        total = float(dur.sum())
        grouped = t.groupby("name", sort=False)["dur_us"]
        agg = grouped.agg(["count", "sum", "mean", "median", "min", "max"])
        agg["p90"] = grouped.quantile(0.9)
        agg = agg.sort_values("sum", ascending=False)
        per_kind = t[t["kind"] != ""].groupby(["name", "kind"], sort=False)["dur_us"].agg(["count", "sum", "mean"])
        kind_map: dict[str, dict[StepKind, KernelKindStats]] = {}
        for (name, kind), row in per_kind.iterrows():  # one row per (name, kind): small
            kind_map.setdefault(name, {})[kind] = KernelKindStats(
                count=int(row["count"]), total_us=float(row["sum"]), mean_us=float(row["mean"])
            )
        out: list[KernelSummary] = []
        for name, row in agg.iterrows():
            out.append(
                KernelSummary(
                    name=str(name),
                    short_name=short_kernel_name(str(name)),
                    kernel_class=kernel_class(str(name)),
                    count=int(row["count"]),
                    total_us=float(row["sum"]),
                    mean_us=float(row["mean"]),
                    median_us=float(row["median"]),
                    p90_us=float(row["p90"]),
                    min_us=float(row["min"]),
                    max_us=float(row["max"]),
                    share=float(row["sum"]) / total if total > 0 else 0.0,
                    per_step_kind=kind_map.get(name, {}),
                )
            )
        return out


def kernels_per_step(table: pd.DataFrame, steps: list[int]) -> dict[str, float]:
    """Median launches per step of each kernel name over the given steps (0 where absent)."""
    if not steps:
        return {}
    sub = table[table["step"].isin(steps)]
    if sub.empty:
        return {}
    counts = sub.groupby(["name", "step"]).size().unstack(fill_value=0).reindex(columns=steps, fill_value=0)
    med = np.median(counts.to_numpy(), axis=1)
    return {str(n): float(m) for n, m in zip(counts.index, med, strict=False)}
