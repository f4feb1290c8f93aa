"""Check (lookup) and update (save one more entry) of a large baseline file.

    PYTHONPATH=src python benchmarks/bench_baseline_io.py [--entries 301] [--mb 29.6]

Issue 17: a 29.6 MB baseline file with 301 entries took 29.8 s to check and 62.6 s to update
(json.loads + jsonschema on every read and again on every write). The file here is built from
the real CPU summary in tests/data (cpu-eager-tiny4.summary-v1.json): one entry per vLLM
version, each summary's kernel list repeated until the file has the asked size. Run it once
with the old sources first on PYTHONPATH and once with the new ones for the before/after rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from pytest_vllm_profile.baseline import BASELINE_SCHEMA_VERSION, BaselineStore
from pytest_vllm_profile.codec import decode_json
from pytest_vllm_profile.schema_v1 import upgrade_summary
from pytest_vllm_profile.summary import ProfileSummary

SOURCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "cpu-eager-tiny4.summary-v1.json"
NODEID = "tests/test_big.py::test_big"


def build(root: Path, entries: int, megabytes: float) -> Path:
    """Write the big baseline file through the store's own layout; return its path."""
    summary_data = upgrade_summary(json.loads(SOURCE.read_text()))  # a 0.1.0 summary in the current layout
    one_entry = len(json.dumps(summary_data, indent=1))
    repeat = max(1, round(megabytes * 1e6 / entries / one_entry))
    summary_data["kernels"] = summary_data["kernels"] * repeat
    record = {
        "created": "2026-12-02T00:00:00Z",
        "commit": None,
        "workload": {"model": "tiny"},
        "repeats": 1,
        "summary": summary_data,
        "spread": None,
    }
    document = {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "test": NODEID,
        "entries": {"cpu": {f"0.{i}.0": record for i in range(entries)}},
    }
    path = BaselineStore(root).path_for(NODEID)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=301)
    parser.add_argument("--mb", type=float, default=29.6)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    try:
        path = build(root, args.entries, args.mb)
        store = BaselineStore(root)
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        found = store.lookup(NODEID, "cpu", "0.7.0")
        check_s = time.perf_counter() - t0
        assert found.entry is not None
        new_summary = decode_json(json.dumps(json.loads(SOURCE.read_text())), ProfileSummary)
        t0 = time.perf_counter()
        changed = store.save(NODEID, "cpu", "9.9.9", new_summary, workload={"model": "tiny"})
        update_s = time.perf_counter() - t0
        assert changed
        load = os.getloadavg()
        print(
            f"file {size_mb:.1f} MB, {args.entries} entries; check {check_s:.2f} s; update {update_s:.2f} s; "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load {load[0]:.2f}"
        )
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
