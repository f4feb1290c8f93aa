"""The nightly gate over the history database: `vllm-profile history` finds a real-summary series'
change point and says it in words, the HTML report plots it, `report --append-history` records."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from pytest_vllm_profile.cli import main
from pytest_vllm_profile.codec import encode_json
from pytest_vllm_profile.history import HistoryEntry, TestHistory, open_history
from pytest_vllm_profile.report import write_html_report
from pytest_vllm_profile.results import RunResults
from support.report_inputs import PASS_ID, real_results


def _run(n: int, decode_factor: float) -> RunResults:
    """A run of the real results, decode steps scaled by `decode_factor` (0.3 % run-to-run noise:
    the H200 same-config re-runs moved -0.01 .. +0.23 %)."""
    r = copy.deepcopy(real_results())
    r.tests = [r.tests[1]]  # the passing test
    r.created = f"2026-01-{n:02d}T03:17:00Z"
    r.commit = f"c{n:02d}"
    noise = 1 + np.random.default_rng(n).normal(0, 0.003)
    summary = r.tests[0].summary
    assert summary is not None
    summary.step_kinds["decode"].median_op_time_us *= decode_factor * noise
    return r


def _history(path: Path, factors: list[float]) -> str:
    with open_history(path) as store:
        for n, f in enumerate(factors, start=1):
            store.append_run(_run(n, f), runner="test")
    return str(path)


def test_gate_fails_on_a_four_percent_decode_slowdown_and_names_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _history(tmp_path / "h.sqlite", [1.0] * 12 + [1.04] * 6)
    assert main(["history", f"--history={db}", "--gate", "--metric=step.decode.median"]) == 1
    out = capsys.readouterr().out
    assert "decode step +4." in out and "since run 13 (commit c13, vLLM 0.26.0)" in out
    assert "gate: FAILED, 1 slowdown(s) still hold" in out
    assert main(["history", f"--history={db}", "--json", "--gate"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"] == 18 and doc["schema_version"] == 2 and not doc["gate"]["passed"]
    (decode,) = [s for s in doc["series"] if s["metric"] == "step.decode.median_us"]
    (cp,) = decode["change_points"]
    assert (cp["run"], cp["commit"], cp["vllm_version"], cp["slowdown"]) == (13, "c13", "0.26.0", True)
    assert cp["relative_change"] == pytest.approx(0.04, abs=0.006) and cp["pvalue"] <= 0.01
    # only the decode step moved: no other series has a change point
    assert [s["metric"] for s in doc["series"] if s["change_points"]] == ["step.decode.median_us"]


def test_gate_passes_once_the_slowdown_is_fixed_and_without_a_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _history(tmp_path / "h.sqlite", [1.0] * 10 + [1.04] * 6 + [1.0] * 6)
    assert main(["history", f"--history={db}", "--gate", "--changes-only"]) == 0
    out = capsys.readouterr().out
    assert "since run 11 " in out and "since run 17 " in out and "gate: passed" in out
    steady = _history(tmp_path / "steady.sqlite", [1.0] * 18)
    assert main(["history", f"--history={steady}", "--gate", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gate"]["passed"] and all(not s["change_points"] for s in doc["series"])


def test_history_cli_refuses_a_jsonl_file_and_imports_it_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = tmp_path / "old.jsonl"
    entry = HistoryEntry(
        date="2026-01-01T00:00:00Z", commit="c1", gpu="H100", tests={PASS_ID: TestHistory("pass", {"decode": 6000.0})}
    )
    jsonl.write_text(encode_json(entry, indent=None) + "\n")
    assert main(["history", f"--history={jsonl}"]) == 2
    assert "a 0.1 JSON Lines history: import it with" in capsys.readouterr().err
    db = tmp_path / "h.sqlite"
    assert main(["history", f"--history={db}", f"--import-jsonl={jsonl}"]) == 0
    out = capsys.readouterr().out
    assert f"imported 1 run(s) from {jsonl} (0 already there)" in out and "1 run(s), 1 series" in out


def test_report_plots_the_series_with_its_change_point(tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    db = _history(tmp_path / "h.sqlite", [1.0] * 12 + [1.04] * 6)
    index = write_html_report(_run(18, 1.04), tmp_path / "report", history=db)
    html = index.read_text()
    assert "<h2>History: 18 run(s)</h2>" in html and '<img class="plot" src="history.png"' in html
    assert "decode step +4." in html and "since run 13 (commit c13, vLLM 0.26.0)" in html
    img = Image.open(tmp_path / "report" / "history.png").convert("RGB")
    assert max(ImageStat.Stat(img.convert("L")).stddev) > 10
    # the slowdown's dashed line is drawn in red (#cf222e); nothing else in the plot is red
    px = np.asarray(img).astype(int)
    assert ((px[..., 0] > 150) & (px[..., 1] < 90) & (px[..., 2] < 100)).sum() > 50


def test_report_without_a_history_file_says_so_and_append_history_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    _run(1, 1.0).save(results)
    db = tmp_path / "db" / "h.sqlite"
    index = write_html_report(_run(1, 1.0), tmp_path / "r0", history=db)
    assert f"No history at {db} yet." in index.read_text() and not db.exists()
    for _ in range(2):
        assert main(["report", str(results), f"--out={tmp_path / 'r'}", f"--history={db}", "--append-history"]) == 0
    with open_history(db) as store:
        assert [r.commit for r in store.runs()] == ["c01", "c01"]
    assert "<h2>History: 2 run(s)</h2>" in (tmp_path / "r" / "index.html").read_text()
