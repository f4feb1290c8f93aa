"""The HTML report, from real summaries, checked as files and in a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_vllm_profile.cli import main as cli_main
from pytest_vllm_profile.cli.report import run as run_report
from pytest_vllm_profile.history import open_history
from pytest_vllm_profile.report import ReportInputError, load_results
from pytest_vllm_profile.report.html import write_html_report
from pytest_vllm_profile.report.tables import kernel_rows
from support.report_inputs import DRIFT_ID, ERROR_ID, FAIL_ID, PASS_ID, dropped_kernel, real_results, real_summaries

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "h3",
    "p",
    "table",
    "tr",
    "th",
    "td",
    "a",
    "span",
    "section",
    "pre",
    "img",
    "ul",
    "ol",
    "li",
    "code",
    "tbody",
}


class Page(HTMLParser):
    """Collects what the tests look at: tags, tables by class, images, links, title attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.tables: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.titles: list[str] = []
        self.classes: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self.tables.append(a.get("class") or "")
        if tag == "img":
            self.imgs.append(a["src"] or "")
        if tag == "a":
            self.links.append(a.get("href") or "")
        if "title" in a and tag != "title":
            self.titles.append(a["title"] or "")
        if a.get("class"):
            self.classes.extend((a["class"] or "").split())

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("html")
    index = write_html_report(real_results(root / "traces"), root / "report")
    return index, root


def test_report_files_tables_and_plots_from_real_summaries(report: tuple[Path, Path]) -> None:
    index, root = report
    page = Page(index.read_text())
    # Verdicts coloured by class, one section per test, error test included.
    assert {"v-fail", "v-pass", "v-no-baseline", "v-error"} <= set(page.classes)
    body = "".join(page.text)
    for nodeid in (FAIL_ID, PASS_ID, DRIFT_ID, ERROR_ID):
        assert nodeid in body
    assert "vllm serve exited with code 1" in body
    # Tables: overview, step times, kernels, drift, requests.
    for cls in ("overview", "steps", "kernels", "drift", "requests"):
        assert cls in page.tables, cls
    # Every image is a PNG file beside index.html: steps + layers for 4 analysed tests, no trend.
    assert len(page.imgs) == 8
    for src in page.imgs:
        png = index.parent / src
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
        assert png.stat().st_size > 10_000
    # Nothing from a kernel name became markup; the full names survive as title attributes.
    assert page.tags <= ALLOWED_TAGS, page.tags - ALLOWED_TAGS
    assert any("<" in t and "cute::C" in t for t in page.titles)
    assert "<cute::" not in index.read_text()
    # The drift table names the kernel removed from the simulated candidate.
    assert dropped_kernel() in body


def test_trace_links_are_relative_and_open_the_files(report: tuple[Path, Path]) -> None:
    index, root = report
    page = Page(index.read_text())
    trace_links = [h for h in page.links if h.endswith(".pt.trace.json.gz")]
    assert trace_links and all(h.startswith("../traces/") for h in trace_links)
    assert all((index.parent / h).resolve().is_file() for h in trace_links)
    assert "https://ui.perfetto.dev" in index.read_text()
    assert "<script" not in index.read_text()


def test_kernel_table_shows_real_per_step_time_and_delta() -> None:
    base, cur = real_summaries()
    rows = kernel_rows(cur, base, "decode")
    top = rows[0]
    k = cur.kernel(top.name)
    assert k is not None
    expected = k.per_step_kind["decode"].total_us / cur.step_kinds["decode"].count
    assert top.current_us == pytest.approx(expected)
    assert top.current_us == max(r.current_us or 0 for r in rows)
    kb = base.kernel(top.name)
    assert kb is not None
    b_us = kb.per_step_kind["decode"].total_us / base.step_kinds["decode"].count
    assert top.delta_pct == pytest.approx(100 * (expected - b_us) / b_us)


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    # Page console messages (console.error, uncaught exceptions) are logged as ...:CONSOLE...
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (bash scripts/setup-report-tools.sh installs it)"
)


@needs_chromium
def test_report_renders_in_headless_chromium(report: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    index, _ = report
    shot = tmp_path / "shot.png"
    run = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", index.as_uri()], tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console_errors(run.stderr) == []
    assert shot.stat().st_size > 50_000
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    assert max(ImageStat.Stat(img.convert("L")).stddev) > 20  # not a blank page
    colors = img.getcolors(maxcolors=1 << 20) or []
    # The verdict badges are drawn: FAIL red (#cf222e) and PASS green (#1a7f37) pixels exist.
    assert any(count > 50 and rgb == (0xCF, 0x22, 0x2E) for count, rgb in colors)
    assert any(count > 50 and rgb == (0x1A, 0x7F, 0x37) for count, rgb in colors)

    dom = _chromium(["--dump-dom", index.as_uri()], tmp_path)
    assert dom.returncode == 0
    assert _console_errors(dom.stderr) == []
    page = Page(dom.stdout)
    assert {"overview", "steps", "kernels", "drift", "requests"} <= set(page.tables)
    assert len(page.imgs) == 8 and all((index.parent / s).is_file() for s in page.imgs)
    assert any("cute::C<" in t for t in page.titles)  # the browser got the real name back


@needs_chromium
def test_console_error_check_flags_a_broken_page(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    run = _chromium(["--dump-dom", bad.as_uri()], tmp_path)
    assert any("undefinedFunction" in line for line in _console_errors(run.stderr))


def test_report_command_renders_offline_from_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = real_results(tmp_path / "traces")
    results.tests = results.tests[:1]  # the failing test; all five are rendered by the `report` fixture
    results.save(tmp_path / "results.json")
    assert load_results(tmp_path / "results.json").tests[0].nodeid == FAIL_ID
    out = tmp_path / "out"
    summary = tmp_path / "summary.md"
    hist = tmp_path / "hist" / "history.sqlite"
    rc = cli_main(
        [
            "report",
            str(tmp_path / "results.json"),
            "--out",
            str(out),
            "--history",
            str(hist),
            "--append-history",
            "--job-summary",
            str(summary),
        ]
    )
    assert rc == 0
    assert (out / "index.html").is_file() and (out / "history.png").is_file()
    with open_history(hist) as store:
        assert len(store.runs()) == 1
    assert FAIL_ID.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|") in summary.read_text()
    assert str(out / "index.html") in capsys.readouterr().out


def test_report_command_entry_point(tmp_path: Path, vllm_profile_command: list[str]) -> None:
    results = real_results()
    results.tests = results.tests[-1:]  # the error test: no plots, this checks the wiring only
    results.save(tmp_path / "results.json")
    run = subprocess.run(
        [*vllm_profile_command, "report", str(tmp_path / "results.json"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "o" / "index.html").is_file()


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "results file not found"),
        ("{not json", "not a readable JSON results file"),
        (json.dumps([1, 2]), "not a vllm-profile results file"),
        (json.dumps({"schema_version": 99, "tests": []}), "newer than this"),
        (json.dumps({"tests": [{"nodeid": "a", "outcome": "passed", "bogus": 1}]}), "does not match the RunResults"),
    ],
)
def test_bad_results_file_is_a_clear_error(
    tmp_path: Path, content: str | None, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReportInputError, match=problem) as info:
        load_results(path)
    assert str(path) in str(info.value)
    assert cli_main(["report", str(path), "--out", str(tmp_path / "o")]) == 1
    assert problem in capsys.readouterr().err


def test_summary_that_is_not_a_summary_names_the_file_the_test_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    real_results().save(path)
    data = json.loads(path.read_text())
    data["tests"][1]["summary"]["steps"] = "not a list"
    path.write_text(json.dumps(data))
    expected = r"results\.json: test .*default.*Expected `array`, got `str` - at `\$\.summary\.steps`"
    with pytest.raises(ReportInputError, match=expected):
        load_results(path)


def test_run_report_needs_history_for_append(tmp_path: Path) -> None:
    real_results().save(tmp_path / "r.json")
    import argparse

    args = argparse.Namespace(
        results=tmp_path / "r.json", out=tmp_path / "o", history=None, append_history=True, job_summary=None
    )
    assert run_report(args) == 2
