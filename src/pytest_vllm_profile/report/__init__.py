"""Reports people read: the HTML report, the GitHub job summary, the run history.

All are rendered from a `results.RunResults`, so `vllm-profile report RESULTS.json --out DIR`
(`cli.report`) re-renders them offline. matplotlib (the `report` extra) is imported only when plots are drawn.
"""

from __future__ import annotations

from .html import write_html_report
from .markdown import maybe_write_github_summary, render_job_summary, write_job_summary
from .tables import ReportInputError, load_results

__all__ = [
    "ReportInputError",
    "load_results",
    "maybe_write_github_summary",
    "render_job_summary",
    "write_html_report",
    "write_job_summary",
]
