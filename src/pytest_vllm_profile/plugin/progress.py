"""Progress lines while a test waits on a server boot, its captures and their analysis (issue 15
item 1: the terminal sat at `tests/test_perf.py ` for the whole 30-250 s boot).

Every line goes to the `pytest_vllm_profile` logger at INFO (so `--log-cli-level=INFO` shows it
live, and pytest's captured-log section of a failing test holds it), and to pytest's terminal
reporter as `vllm-profile: ...` unless live logging already shows it or the run is quiet (-q).
xdist workers have no terminal: their lines go to the logger only.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

import pytest

LOGGER_NAME = "pytest_vllm_profile"
logger = logging.getLogger(LOGGER_NAME)


def _live_logging(config: pytest.Config) -> bool:
    level = config.getoption("log_cli_level", None)
    if level is not None:
        return True
    try:
        return bool(config.getini("log_cli"))
    except (ValueError, KeyError):
        return False


class Progress:
    """`say(message)`: one progress line (logger INFO + the terminal, see the module doc)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def _terminal(self) -> Any:
        if hasattr(self.config, "workerinput") or self.config.get_verbosity() < 0 or _live_logging(self.config):
            return None
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def say(self, message: str) -> None:
        logger.info(message)
        terminal = self._terminal()
        if terminal is None:
            return
        # Inside a test's setup pytest captures the output (fd 1 too): step out of it, as live
        # logging does, or the line lands in the test's captured output instead of the terminal.
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            terminal.write_line(f"vllm-profile: {message}")
