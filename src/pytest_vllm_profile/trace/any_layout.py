"""Bounded-memory reading of a trace's `traceEvents` array in any JSON layout.

Kineto's own line layout is cut at its `\\n  },\\n  {` lines (`torch_reader`). Any other layout
(one event per line, the whole document on one line, another indent) used to be parsed whole:
a 0.86 GB one-event-per-line trace took 7.5 GB RSS (issue 17). Here the array is cut at a
candidate boundary `}` `,` `{` (whitespace allowed between), found by a regex in each block.
A candidate inside a string or inside a nested object cannot be mistaken for a real one: the
slice from a true event start up to it leaves a string or a bracket open, so decoding
`[` + slice + `]` fails and an earlier candidate is tried. Every slice that decodes therefore
ends at a true event boundary, and memory stays at about one block of text plus the table.

A single event (or an unparseable stretch) longer than `PENDING_LIMIT_BYTES` is refused with a
`LayoutMismatch` saying so; the caller decides whether a whole-document parse is affordable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

# Text that may wait for its event boundary; a trace event is a few hundred bytes, so a stretch
# this long without a decodable boundary is not a trace's event list.
PENDING_LIMIT_BYTES = 64 << 20
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_ARRAY_END = re.compile(rb"\}\s*\]")
# Candidates tried per block before reading more: a string holding "}, {" is rare.
_TRIES_PER_BLOCK = 8
_END_TRIES = 64


class LayoutMismatch(Exception):
    """The text is not laid out as this parser expects (or is not valid JSON): try another parser."""


def _last_good_cut(pending: bytes, decode: Callable[[bytes], None]) -> tuple[int, str]:
    """Decode the events up to the last boundary that decodes: the index after it (0 when none did)
    and the last decode error seen (for the message when nothing ever decodes)."""
    window = 1 << 16
    tried = 0
    error = ""
    while True:
        start = max(0, len(pending) - window)
        found = list(_BOUNDARY.finditer(pending, start))
        for match in reversed(found):
            try:
                decode(b"".join((b"[", memoryview(pending)[: match.start() + 1], b"]")))
            except LayoutMismatch as exc:
                error = str(exc)
                tried += 1
                if tried >= _TRIES_PER_BLOCK:
                    return 0, error
                continue
            return match.end() - 1, error  # the next event's "{"
        if start == 0:
            return 0, error
        window *= 16


def parse_events(blocks: Iterator[bytes], first: bytes, decode: Callable[[bytes], None]) -> bytes:
    """Decode the events of a `traceEvents` array whose text starts with `first` (just after `[`).

    `decode(text)` decodes a JSON array of events into the table, atomically, and raises
    `LayoutMismatch` when `text` is not valid JSON. Returns the text after the array's `]`.
    """
    pending = first.lstrip()
    while not pending:
        block = next(blocks, None)
        if block is None:
            raise LayoutMismatch("traceEvents array never ends")
        pending = block.lstrip()
    if pending.startswith(b"]"):
        return pending[1:] + b"".join(blocks)
    if not pending.startswith(b"{"):
        raise LayoutMismatch("traceEvents does not start with an event object")
    done = 0  # bytes of the array's text already decoded
    for block in blocks:
        pending += block
        cut, error = _last_good_cut(pending, decode)
        if cut:
            done += cut
            pending = pending[cut:]
        elif len(pending) > PENDING_LIMIT_BYTES:
            raise LayoutMismatch(
                f"no decodable event boundary in {len(pending) >> 20} MB of text starting "
                f"{done} bytes into the traceEvents array (last decode error: {error})"
            )
    # The last event(s), the array's "]", and the rest of the document.
    error = "no '}]' at all"
    for tries, match in enumerate(_ARRAY_END.finditer(pending)):
        if tries >= _END_TRIES:
            break
        try:
            decode(b"".join((b"[", memoryview(pending)[: match.start() + 1], b"]")))
        except LayoutMismatch as exc:
            error = str(exc)
            continue
        return pending[match.end() :]
    raise LayoutMismatch(
        f"the end of the traceEvents array does not decode, {done} bytes into it (last decode error: {error})"
    )
