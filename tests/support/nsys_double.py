"""A stand-in `nsys`: a shell script named nsys that runs the body a test gives it."""

from __future__ import annotations

import stat
from pathlib import Path


def fake_nsys(folder: Path, body: str) -> Path:
    """A stand-in `nsys` shell script in `folder` running `body`."""
    folder.mkdir(exist_ok=True)
    script = folder / "nsys"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script
