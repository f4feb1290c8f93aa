"""Secrets in a workload's env and server arguments are redacted by whole-word name rules."""

from __future__ import annotations

import pytest

from pytest_vllm_profile.redact import REDACTED, is_secret_name, redact_args, redact_env, redact_text, secret_values


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "--hf-token",
        "--api-key",
        "VLLM_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "--ssl-keyfile-password",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "--max-num-batched-tokens",
        "--tokenizer",
        "--tokenizer-mode",
        "--kv-cache-dtype",
        "VLLM_CPU_KVCACHE_SPACE",
        "--max-model-len",
        "HF_HUB_OFFLINE",
        "--keyfile-dir-that-is-not-a-word-match-keys",
    ],
)
def test_names_that_only_look_like_secrets_are_kept(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_env_hides_secret_values_only() -> None:
    env = {"HF_TOKEN": "hf_abc123", "VLLM_CPU_KVCACHE_SPACE": "1"}
    assert redact_env(env) == {"HF_TOKEN": REDACTED, "VLLM_CPU_KVCACHE_SPACE": "1"}


def test_redact_args_both_flag_forms() -> None:
    args = ["--hf-token", "hf_abc", "--api-key=sk-1", "--max-num-batched-tokens", "512", "--enforce-eager"]
    assert redact_args(args) == [
        "--hf-token",
        REDACTED,
        f"--api-key={REDACTED}",
        "--max-num-batched-tokens",
        "512",
        "--enforce-eager",
    ]


def test_secret_values_scrub_a_log_tail() -> None:
    secrets = secret_values({"HF_TOKEN": "hf_abc123"}, ["--hf-token", "hf_zzz", "--api-key=sk-1"])
    assert secrets == {"hf_abc123", "hf_zzz", "sk-1"}
    log = "vllm serve m --hf-token hf_zzz --api-key=sk-1 (HF_TOKEN=hf_abc123)\nError: bad token"
    assert redact_text(log, secrets) == (
        f"vllm serve m --hf-token {REDACTED} --api-key={REDACTED} (HF_TOKEN={REDACTED})\nError: bad token"
    )
