"""Checks on the values a reader decoded, before any analysis sees them.

A corrupted trace must never turn into plausible numbers (issue 17: `dur` "abc" read as 0,
every event duplicated read as 20 steps x 72 layers, every `ts` = 0 read as 360 layers). Each
problem is counted per event category and then, per problem:

- fatal (`TraceError` naming the file, the field and the counts) when it touches more than
  `FATAL_SHARE` of one category's events, or when nothing would be left: a summary of what
  remains would not describe the run;
- otherwise recoverable: the damaged events are dropped (duplicates: the copies removed) and a
  note starting with `DAMAGE_NOTE_PREFIX` goes into `metadata.extra["damage"]`; the summary
  copies it into its `notes`, and the comparison refuses to pass on such a summary.

Real traces (all of tests/data and shared/traces) have none of these problems, so the checks
change nothing for them; the common case costs one vectorized pass plus one hash sort for
duplicates (~8 ms on the eager trace's 105 K rows, ~1.5 % of its read; benchmarks/RESULTS.md).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..damage import DAMAGE_NOTE_PREFIX
from ..errors import TraceError

# A problem that touches more than this share of one category's events is fatal.
FATAL_SHARE = 0.10
# Longest plausible event: one day in µs. A profile covers seconds to minutes; 1e308 is corruption.
MAX_PLAUSIBLE_US = 86_400e6

DAMAGE_KEY = "damage"  # metadata.extra key: list of damage notes


@dataclass
class Damage:
    """Problems found in one file: per (field, problem) the count per category."""

    path: Path
    totals: dict[str, int] = field(default_factory=dict)  # events per category (before dropping)
    problems: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)

    def add(self, field_name: str, problem: str, per_category: dict[str, int]) -> None:
        counts = self.problems.setdefault((field_name, problem), {})
        for cat, n in per_category.items():
            if n:
                counts[cat] = counts.get(cat, 0) + n

    def raise_if_fatal(self) -> None:
        """TraceError for the first problem that touches more than FATAL_SHARE of a category's events."""
        for (field_name, problem), counts in self.problems.items():
            for cat, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                of = self.totals.get(cat, 0)
                if of and n > FATAL_SHARE * of:
                    raise TraceError(
                        self.path,
                        f"damaged trace: {n} of {of} {cat} events have {problem} (field {field_name!r}); "
                        f"more than {FATAL_SHARE:.0%} of them, so times built on the rest would not describe the "
                        f"run ({_listing(counts)} in all)",
                    )

    def notes(self) -> list[str]:
        out = []
        for (field_name, problem), counts in self.problems.items():
            n = sum(counts.values())
            out.append(
                f"{DAMAGE_NOTE_PREFIX}{n} events ({_listing(counts)}) with {problem} (field {field_name!r}) "
                f"dropped (file {self.path})"
            )
        if self.duplicates:
            n = sum(self.duplicates.values())
            out.append(
                f"{DAMAGE_NOTE_PREFIX}{n} duplicated events ({_listing(self.duplicates)}: same name, "
                f"category, ts, dur, process, thread, stream and ids as another) removed (file {self.path})"
            )
        return out


def _listing(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {cat}" for cat, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _per_category(mask: np.ndarray, cat_codes: np.ndarray, cats: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(cat_codes[mask], minlength=len(cats))
    return {cats[i]: int(n) for i, n in enumerate(counts) if n}


def check_times(
    damage: Damage, ts: np.ndarray, dur: np.ndarray, cat_codes: np.ndarray, cats: Sequence[str]
) -> np.ndarray | None:
    """Count bad ts/dur values into `damage`; the mask of rows to keep, or None when all are good."""
    # One pass for the common case: NaN fails every comparison, so it lands in `bad` too.
    good = (dur >= 0) & (dur <= MAX_PLAUSIBLE_US) & np.isfinite(ts) & (ts != 0)
    if good.all():
        return None
    checks = (
        ("dur", "a missing or non-numeric value", np.isnan(dur)),
        ("dur", "a negative value", dur < 0),
        (
            "dur",
            f"an infinite or implausible value (> {MAX_PLAUSIBLE_US:.0e} µs)",
            np.isinf(dur) | (dur > MAX_PLAUSIBLE_US),
        ),
        ("ts", "a missing, non-numeric or infinite value", ~np.isfinite(ts)),
        ("ts", "a zero value", ts == 0),
    )
    for field_name, problem, mask in checks:
        if mask.any():
            damage.add(field_name, problem, _per_category(mask, cat_codes, cats))
    return good


def duplicate_mask(columns: Sequence[np.ndarray], hashed: int = 4) -> np.ndarray | None:
    """Rows that repeat an earlier row in every one of `columns` (int/float, same length); None if none.

    A hash of the first `hashed` columns is sorted first (rows equal in every column are equal
    in those; ~8 ms for the eager trace's 105 K rows, against ~25 ms hashing all ten columns
    and arg-sorting, measured);
    only rows whose hash repeats are compared exactly, on every column.
    """
    n = len(columns[0])
    if n < 2:
        return None
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, col in enumerate(columns[:hashed]):
            bits = col.view(np.uint64) if col.dtype.itemsize == 8 else col.astype(np.int64).view(np.uint64)
            h = (h ^ bits) * np.uint64(0x9E3779B97F4A7C15 + 2 * i)
            h ^= h >> np.uint64(29)
    sorted_h = np.sort(h)  # a plain sort first: argsort costs ~3x more and is needed only on a repeat
    if not (sorted_h[1:] == sorted_h[:-1]).any():
        return None
    order = np.argsort(h, kind="stable")
    sorted_h = h[order]
    same_as_prev = sorted_h[1:] == sorted_h[:-1]
    # Exact check among hash collisions: group rows with equal full keys, keep the first of each.
    candidates = np.unique(np.concatenate((order[1:][same_as_prev], order[:-1][same_as_prev])))
    keys = np.stack(
        [c[candidates].view(np.int64) if c.dtype.itemsize == 8 else c[candidates].astype(np.int64) for c in columns],
        axis=1,
    )
    _, first = np.unique(keys, axis=0, return_index=True)
    dup = np.zeros(n, dtype=bool)
    dup[candidates] = True
    dup[candidates[first]] = False
    return dup if dup.any() else None


def path_problem(path: Path) -> str | None:
    """Why `path` is neither a regular file nor a directory (the cause, in words); None when it is one."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"broken symlink: it points to {os.readlink(path)!r}, which does not exist"
        return "no such file or directory"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: resolving this link leads back to itself"
        return f"cannot be read: {exc.strerror or exc}"
    for test, what in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return f"{what}, not a trace file or folder"
    return None
