"""What the docker launcher runs a container with: `ContainerOptions`, and its environment.

Secrets (HF_TOKEN and friends) go to the engine only: `SecretEnv` never shows their values in a
repr, and `redact` takes them out of log tails and error messages.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

from ..setting_defaults import DEFAULT_IMAGE

# Host environment variables handed to the server when set (the model download needs them).
PASSTHROUGH_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# Names whose values never appear in anything we print or store.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY", re.IGNORECASE)
REDACTED = "***"


@dataclass
class ContainerOptions:
    """How to run the server container (the `ServerSpec` says what server to run)."""

    image: str = DEFAULT_IMAGE
    tag: str | None = None  # None: the tag in `image`, else "latest"
    base_url: str | None = None  # engine URL; None: DOCKER_HOST, a Podman socket, Docker's default
    allow_pull: bool = False
    # None: the image's own entrypoint (the official image's is `vllm serve`); older images:
    # ("python3", "-m", "vllm.entrypoints.openai.api_server") with model_as_flag=True.
    entrypoint: tuple[str, ...] | None = None
    model_as_flag: bool = False  # `--model M` instead of `vllm serve`'s positional M
    container_port: int = 8000
    container_trace_dir: str = "/vllm-traces"
    container_model_dir: str = "/models"  # where a local model folder is mounted (read-only)
    shm_size: str | None = "16g"  # NCCL / torch shared memory; None: engine default
    profiler_style: str = "auto"  # "auto" (ask the image), PROFILER_CONFIG_STYLE or ENV_STYLE
    python_in_image: str = "python3"  # interpreter used to ask the image for its vLLM
    gpu_request: str = "auto"  # "auto" (by engine), "nvidia" (Docker), "cdi" (Podman), "none"
    volumes: dict[str, str] = field(default_factory=dict)  # extra host path -> container path (read-only)
    extra_env: dict[str, str] = field(default_factory=dict)
    passthrough_env: tuple[str, ...] = PASSTHROUGH_ENV
    session_id: str = field(default_factory=lambda: f"{os.getpid()}-{int(time.time())}")
    stop_timeout_s: int = 20
    name_prefix: str = "pvp-vllm"

    def image_ref(self) -> str:
        if self.tag:
            return f"{self.image}:{self.tag}"
        last = self.image.rsplit("/", 1)[-1]
        return self.image if (":" in last or "@" in self.image) else f"{self.image}:latest"


class SecretEnv(dict):
    """Environment for the container whose secret values never show in a repr."""

    def secret_values(self) -> list[str]:
        return [v for k, v in self.items() if _SECRET_NAME.search(k) and v]

    def redacted(self) -> dict[str, str]:
        return {k: (REDACTED if _SECRET_NAME.search(k) and v else v) for k, v in self.items()}

    def __repr__(self) -> str:
        return repr(self.redacted())

    __str__ = __repr__


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value replaced by ***."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 4:  # a 1-3 character "secret" would shred the log
            text = text.replace(value, REDACTED)
    return text
