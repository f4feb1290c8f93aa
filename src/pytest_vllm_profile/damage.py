"""How a summary says it was built on damaged trace data (light: no pandas, no analysis import).

The trace readers drop or deduplicate damaged events (see `trace.validation`) and say so in a
note starting with `DAMAGE_NOTE_PREFIX`; the summary carries those notes in `notes` (and, for a
tensor-parallel profile, in each rank's `notes`). The comparison engine calls `damage_notes` and
never passes a comparison with a damaged side.
"""

from __future__ import annotations

from typing import Any

DAMAGE_NOTE_PREFIX = "damaged trace: "


def damage_notes(summary: Any) -> list[str]:
    """The damage notes of a `ProfileSummary` (top level, then each rank's), each once, in order."""
    found: list[str] = []
    for owner in (summary, *(getattr(summary, "ranks", None) or [])):
        for note in getattr(owner, "notes", None) or []:
            if isinstance(note, str) and note.startswith(DAMAGE_NOTE_PREFIX) and note not in found:
                found.append(note)
    return found
