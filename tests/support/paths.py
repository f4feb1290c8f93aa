"""Where things are, for every test layer and the helpers: one definition of each path."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
DOCS = REPO / "docs"
TESTS_DIR = REPO / "tests"  # the folder that holds this `support` package (put on sys.path by tests/conftest.py)
DATA = TESTS_DIR / "data"  # the real traces, summaries and exports (tests/data/README.md)
H200_SEED_RUNS = DATA / "h200-seed-reps"  # five H200 boots of one config + eager/triton timed passes (README)
