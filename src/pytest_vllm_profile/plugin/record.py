"""The configuration of a test's profile on record (`configuration.RunConfiguration`), built
from the plugin's view: the session's options and where they came from, the pooled server's
launcher, the versions asked once per session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..configuration import (
    RunConfiguration,
    cpu_model_name,
    nvidia_driver_version,
    plugin_version,
    python_versions,
    server_args_on_record,
    server_env_on_record,
)
from ..option_table import OPTIONS_BY_NAME
from ..redact import redact_args

if TYPE_CHECKING:
    from ..pool import PooledServer
    from ..workload_profile import VllmProfile
    from .state import SessionState

_VERSIONS_KEY = pytest.StashKey[dict[str, "str | None"]]()


def session_args_origin(config: pytest.Config) -> str:
    """ "option" when --vllm-server-arg was given (it overrides the ini key), else "ini"."""
    return "option" if config.getoption(OPTIONS_BY_NAME["server_args"].dest) else "ini"


def _session_versions(state: SessionState, interpreter: str | None) -> dict[str, str | None]:
    """torch / CUDA of the server's interpreter and the driver, asked once per session (process launcher)."""
    found = state.config.stash.get(_VERSIONS_KEY, None)
    if found is None:
        found = {}
        if state.settings.launcher == "process":
            found.update(python_versions(interpreter))
        found["driver"] = nvidia_driver_version()
        state.config.stash[_VERSIONS_KEY] = found
    return found


def configuration_of(state: SessionState, profile: VllmProfile, pooled: PooledServer) -> RunConfiguration:
    from ..baseline import keys_for_summary  # lazy: jsonschema is not loaded by plain pytest runs

    settings = state.settings
    workload = profile.workload
    command = getattr(pooled.launcher, "command", None)
    gpu = keys_for_summary(profile.summary)[0] if profile.summary.timing_domain == "gpu" else None
    # The CPU of a url-launched server may be another machine's: not recorded then.
    hardware = gpu or (cpu_model_name() if settings.launcher != "url" else None)
    # The process launcher's command starts with the server's interpreter (or `vllm serve`).
    first = str(command[0]) if isinstance(command, list) and command else ""
    interpreter = settings.python or (first if Path(first).name.startswith("python") else None)
    versions = _session_versions(state, interpreter)
    return RunConfiguration(
        plugin_version=plugin_version(),
        launcher=settings.launcher,
        server_command=redact_args([str(c) for c in command]) if isinstance(command, list) else [],
        server_args=server_args_on_record(
            workload.server_args, settings.server_args, session_args_origin(state.config)
        ),
        server_env=server_env_on_record(dict(workload.env)) if settings.launcher != "url" else {},
        vllm_version=profile.vllm_version,
        torch_version=versions.get("torch"),
        cuda_version=versions.get("cuda"),
        driver_version=versions.get("driver"),
        hardware=hardware,
    )
