"""Decompressed bytes of a trace file, block by block (gzip detected by its magic bytes).

gzip is inflated with ISA-L (`isal`) when installed: ~5x faster than zlib on these traces
(benchmarks/RESULTS.md). Errors are `TraceError`s naming the file and the cause.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from ..errors import TraceError

_inflate_lib: ModuleType
try:  # ISA-L inflate: same stream API as zlib, ~5x faster (measured in benchmarks/RESULTS.md)
    from isal import isal_zlib as _inflate_lib

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate_lib.error)
except ImportError:  # pragma: no cover - isal is a declared dependency; zlib still works
    _inflate_lib = zlib
    _INFLATE_ERRORS = (zlib.error,)

_TRUNCATED_GZIP = (
    "truncated: the gzip stream ends early — was the trace still being written? "
    "vLLM flushes traces after /stop_profile returns"
)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def iter_blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """Decompressed bytes of `path` in blocks of about `block_bytes`; gzip is detected by its magic bytes."""
    gz = _is_gzip(path)
    decomp = _inflate_lib.decompressobj(wbits=31) if gz else None
    # Compressed input is read in smaller pieces so decompressed blocks stay near block_bytes.
    read_size = block_bytes // 8 if gz else block_bytes
    with path.open("rb") as fh:
        while True:
            raw = fh.read(read_size)
            if decomp is None:
                if not raw:
                    return
                yield raw
                continue
            if not raw:
                tail = decomp.flush()
                if tail:
                    yield tail
                if not decomp.eof:
                    raise TraceError(path, _TRUNCATED_GZIP)
                return
            try:
                out = decomp.decompress(raw)
                # Concatenated gzip members (rare) are valid gzip: keep decoding them.
                while decomp.eof and decomp.unused_data:
                    rest = decomp.unused_data
                    decomp = _inflate_lib.decompressobj(wbits=31)
                    out += decomp.decompress(rest)
            except _INFLATE_ERRORS as exc:
                raise TraceError(path, f"corrupt gzip data ({exc})") from None
            if out:
                yield out
