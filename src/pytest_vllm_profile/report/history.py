"""The history section of the HTML report: each test's main step time over the runs of the
history database, with the change points found in it marked (history/ finds them)."""

from __future__ import annotations

import html
from pathlib import Path

from ..history import HistoryError, Series, detect, is_postgres, open_history
from ..results import RunResults
from .plots import history_plot
from .tables import ReportInputError

# The series drawn per test, in this order of preference: the decode step is what a
# nightly regression most often moves; a prefill-only test has only its prefill step.
PLOTTED_METRICS = ("step.decode.median_us", "step.mixed.median_us", "step.prefill.median_us")


def _plotted(series: list[Series], nodeids: list[str]) -> list[Series]:
    by_key = {(s.nodeid, s.metric): s for s in series}
    out = []
    for nodeid in nodeids:
        for metric in PLOTTED_METRICS:
            if (nodeid, metric) in by_key:
                out.append(by_key[(nodeid, metric)])
                break
    return out


def history_section(results: RunResults, out_dir: Path, location: str | Path) -> str:
    """HTML for the report: plots of this run's tests over the history on this run's GPU, and
    the change points of those series in words. ReportInputError when the history cannot be read."""
    text = str(location)
    if not is_postgres(text) and not Path(text).exists():
        return f'<h2>History</h2><p class="note">No history at {html.escape(text)} yet.</p>'
    try:
        with open_history(text) as store:
            series = store.series(gpu=results.gpu)
            location_name = store.location if is_postgres(text) else Path(text).name
    except HistoryError as exc:
        raise ReportInputError(str(exc)) from None
    plotted = _plotted(series, [t.nodeid for t in results.tests])
    changes = detect(plotted)
    png = history_plot(plotted, changes, out_dir / "history.png")
    runs = max((len(s.values) for s in plotted), default=0)
    items = "".join(
        f"<li><code>{html.escape(c.series.nodeid)}</code>: {html.escape(c.describe())}</li>" for c in changes
    )
    found = f'<ul class="notes">{items}</ul>' if items else '<p class="note">No change point in these series.</p>'
    img = (
        f'<img class="plot" src="{html.escape(png.name)}" alt="step time over runs, change points marked">'
        if png is not None
        else '<p class="note">No step times of these tests in the history.</p>'
    )
    return (
        f"<h2>History: {runs} run(s)</h2>"
        f'<p class="note">From {html.escape(location_name)}; change points (E-divisive means, '
        f"permutation test) are marked with dashed lines, each level's mean drawn flat.</p>{img}{found}"
    )
