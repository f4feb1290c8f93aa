"""UrlLauncher: attach to a server someone else started (the shared real vLLM CPU server)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pytest_vllm_profile.capture import ProfileCapture
from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers.base import ServerSpec, free_port
from pytest_vllm_profile.launchers.url import UrlLauncher
from pytest_vllm_profile.workload import Workload
from support.cpu_vllm import TINY_SERVED_NAME


def test_unreachable_url_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    launcher = UrlLauncher(ServerSpec(model="m", trace_dir=tmp_path), url, health_timeout_s=1.0)
    with pytest.raises(LauncherError, match=r"not reachable/healthy after 1 s \(ConnectError"):
        launcher.start()


def test_url_needs_scheme_and_an_existing_trace_folder(tmp_path: Path) -> None:
    with pytest.raises(LauncherError, match="must start with http"):
        UrlLauncher(ServerSpec(model="m", trace_dir=tmp_path), "localhost:8000")
    with pytest.raises(LauncherError, match="needs the folder where that server writes traces"):
        UrlLauncher(ServerSpec(model="m"), "http://127.0.0.1:1").start()
    with pytest.raises(LauncherError, match="does not exist here"):
        UrlLauncher(ServerSpec(model="m", trace_dir=tmp_path / "absent"), "http://127.0.0.1:1").start()


@pytest.mark.cpu_vllm
def test_attach_finds_model_captures_and_leaves_server_running(cpu_vllm_server) -> None:
    _, server = cpu_vllm_server
    launcher = UrlLauncher(ServerSpec(model="", trace_dir=server.trace_dir), server.base_url + "/")
    with launcher as attached:
        assert attached.model_name == TINY_SERVED_NAME  # the only model the server lists
        assert attached.base_url == server.base_url
        assert attached.vllm_version == "0.32.0"
        result = ProfileCapture(attached, Workload(model="ignored", max_tokens=4, warmup_requests=0)).run()
        assert result.rank_trace_files and result.requests[0].completion_tokens == 4
    # stop() did nothing to the server
    assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200


@pytest.mark.cpu_vllm
def test_attach_with_wrong_model_lists_what_is_served(cpu_vllm_server) -> None:
    _, server = cpu_vllm_server
    spec = ServerSpec(model="other-model", trace_dir=server.trace_dir)
    with pytest.raises(LauncherError, match=r"serves \['tiny'\], not 'other-model'"):
        UrlLauncher(spec, server.base_url).start()
