"""The configuration a test's profile was made with (`configuration.RunConfiguration`), as
report rows: shared by the HTML report (a table per test) and any text rendering."""

from __future__ import annotations

from ..configuration import RunConfiguration


def configuration_rows(config: RunConfiguration | None) -> list[tuple[str, str]]:
    """(label, value) rows of what was recorded; empty when nothing was (results of 0.1.0)."""
    if config is None:
        return []
    rows: list[tuple[str, str]] = []

    def add(label: str, value: object) -> None:
        if value not in (None, "", [], {}):
            rows.append((label, str(value)))

    add("server command", " ".join(config.server_command))
    add("server args (marker)", " ".join(config.server_args.marker))
    add("server args (--vllm-server-arg)", " ".join(config.server_args.option))
    add("server args (ini vllm_server_args)", " ".join(config.server_args.ini))
    add("server environment", ", ".join(f"{k}={v}" for k, v in config.server_env.items()))
    add("hardware", config.hardware)
    add("vLLM", config.vllm_version)
    add("torch", config.torch_version)
    add("CUDA", config.cuda_version)
    add("NVIDIA driver", config.driver_version)
    add("launcher", config.launcher)
    add("pytest-vllm-profile", config.plugin_version)
    return rows
