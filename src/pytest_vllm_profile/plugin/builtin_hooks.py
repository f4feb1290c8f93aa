"""The plugin's own implementations of its hooks (hookspecs.py): the defaults.

All are `trylast`, so an implementation in a conftest.py or another plugin is asked first.
The three built-in launchers are three implementations of `pytest_vllm_profile_make_launcher`,
each answering for its own `--vllm-launcher` name, registered as the plugins
"vllm-profile-launcher-process", "-docker" and "-url".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from ..settings import SessionSettings

if TYPE_CHECKING:
    from ..launchers.base import Launcher, ServerSpec
    from ..workload_profile import VllmProfile


def _process_launcher(spec: ServerSpec, settings: SessionSettings) -> Launcher:
    from ..launchers.process import ProcessLauncher

    return ProcessLauncher(
        spec,
        python=settings.python,
        nsys=settings.nsys,
        nsys_mode=settings.nsys_mode,
        nsys_report_timeout_s=settings.capture_timeout_s,
    )


def _docker_launcher(spec: ServerSpec, settings: SessionSettings) -> Launcher:
    from ..launchers.docker import ContainerOptions, DockerLauncher

    options = ContainerOptions(allow_pull=settings.allow_pull, base_url=settings.docker_host)
    if settings.image:
        options.image = settings.image
    return DockerLauncher(spec, options)


def _url_launcher(spec: ServerSpec, settings: SessionSettings) -> Launcher:
    from ..launchers.url import UrlLauncher

    return UrlLauncher(spec, url=settings.url or "")


class BuiltinLauncher:
    """The default `pytest_vllm_profile_make_launcher` for one `--vllm-launcher` name."""

    def __init__(self, name: str, make: Callable[[ServerSpec, SessionSettings], Launcher]) -> None:
        self.name = name
        self.make = make

    @pytest.hookimpl(trylast=True)
    def pytest_vllm_profile_make_launcher(
        self, config: pytest.Config, spec: ServerSpec, settings: SessionSettings
    ) -> Launcher | None:
        return self.make(spec, settings) if settings.launcher == self.name else None


BUILTIN_LAUNCHERS = (
    BuiltinLauncher("process", _process_launcher),
    BuiltinLauncher("docker", _docker_launcher),
    BuiltinLauncher("url", _url_launcher),
)


@pytest.hookimpl(trylast=True)
def pytest_vllm_profile_baseline_key(item: pytest.Item, profile: VllmProfile) -> tuple[str, str]:
    return profile.gpu, profile.vllm_version


@pytest.hookimpl(trylast=True)
def pytest_vllm_profile_commit(config: pytest.Config) -> str | None:
    """`GITHUB_SHA`, else the checkout's commit (read-only `git rev-parse`); None outside git."""
    commit = os.environ.get("GITHUB_SHA")
    if not commit and shutil.which("git"):
        try:
            commit = (
                subprocess.run(
                    ["git", "rev-parse", "HEAD"], cwd=config.rootpath, capture_output=True, text=True, timeout=10
                ).stdout.strip()
                or None
            )
        except (OSError, subprocess.SubprocessError):
            commit = None
    return commit or None


def register(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the defaults (once per plugin manager)."""
    if not pluginmanager.has_plugin("vllm-profile-defaults"):
        pluginmanager.register(sys.modules[__name__], "vllm-profile-defaults")
    for launcher in BUILTIN_LAUNCHERS:
        name = f"vllm-profile-launcher-{launcher.name}"
        if not pluginmanager.has_plugin(name):
            pluginmanager.register(launcher, name)
