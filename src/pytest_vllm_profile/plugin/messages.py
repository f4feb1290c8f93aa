"""How the plugin words a failure: the cause first, whole.

Issue 15: every message started with the test id, so pytest's one-line summary showed only
`Failed: tests/test_perf.py::test_bat...`; and the results file kept the last 4000 characters,
cutting off "vLLM server exited with code 1 during startup". pytest already names the test in
every report line, so a message starts with what went wrong, and a long one keeps its head.
"""

from __future__ import annotations

# Characters of a failure message kept in results.json / the HTML report: the head (the cause,
# the command, the root-cause lines) and a note of what was cut. The whole text stays in the
# server log and pytest's own report.
MESSAGE_HEAD_CHARS = 8000


def cause_first(exc: BaseException) -> str:
    """`<ExceptionType>: <message>` -- the message as raised, never prefixed with the test id."""
    return f"{type(exc).__name__}: {exc}"


def keep_head(text: str, limit: int = MESSAGE_HEAD_CHARS) -> str:
    """`text` whole when short, else its first `limit` characters and how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters not kept; see pytest's report]"
