"""The option table (settings.OPTIONS): each default declared once, values parsed and checked."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from pytest_vllm_profile.capture import ProfileCapture
from pytest_vllm_profile.launchers.base import ServerSpec
from pytest_vllm_profile.launchers.docker import ContainerOptions
from pytest_vllm_profile.pool import PoolSettings
from pytest_vllm_profile.setting_defaults import DEFAULT_IMAGE
from pytest_vllm_profile.settings import (
    OPTIONS,
    OPTIONS_BY_NAME,
    BaselineSettings,
    CaptureSettings,
    SessionSettings,
    SettingsError,
    resolve_settings,
)


def default(name: str) -> object:
    return OPTIONS_BY_NAME[name].default


def test_the_table_has_one_entry_per_session_setting() -> None:
    assert [o.name for o in OPTIONS] == [f.name for f in fields(SessionSettings)]
    assert len({o.flag for o in OPTIONS if o.flag}) == sum(1 for o in OPTIONS if o.flag)
    assert len({o.ini for o in OPTIONS if o.ini}) == sum(1 for o in OPTIONS if o.ini)


def test_the_library_settings_classes_take_the_tables_defaults() -> None:
    # repeats was 3 in the plugin and 1 in CaptureSettings before the table
    assert CaptureSettings() == CaptureSettings(
        repeats=default("repeats"), timeout_s=default("capture_timeout_s"), poll_interval_s=default("capture_poll_s")
    )
    assert default("repeats") == 3
    pool = PoolSettings()
    assert (pool.launcher, pool.profiler, pool.health_timeout_s, pool.max_live_servers, pool.workers_per_gpu) == (
        default("launcher"),
        default("profiler"),
        default("health_timeout_s"),
        default("max_servers"),
        default("workers_per_gpu"),
    )
    spec = ServerSpec(model="m")
    assert (spec.health_timeout_s, spec.profiler) == (default("health_timeout_s"), default("profiler"))
    capture = inspect.signature(ProfileCapture).parameters
    assert capture["timeout_s"].default == default("capture_timeout_s")
    assert capture["poll_interval_s"].default == default("capture_poll_s")
    assert BaselineSettings(root=Path(".")).fail_on_drift is default("fail_on_drift")
    assert ContainerOptions().image_ref() == f"{DEFAULT_IMAGE}:latest"  # what --vllm-image's help names
    assert f"default {DEFAULT_IMAGE}:latest" in OPTIONS_BY_NAME["image"].help_text


def test_nothing_given_resolves_to_the_defaults(tmp_path: Path) -> None:
    settings = resolve_settings({}, rootdir=tmp_path, cwd=tmp_path / "elsewhere")
    for option in OPTIONS:
        value = getattr(settings, option.name)
        if option.type == "path":
            expected = tmp_path / option.default if option.default is not None else None
            assert value == expected, option.name
        else:
            assert value == option.default, option.name
    assert settings.results_path is None  # written only when profiling ...
    enabled = resolve_settings({"enabled": True}, rootdir=tmp_path, cwd=tmp_path / "elsewhere")
    assert enabled.results_path == tmp_path / ".vllm-profile" / "results.json"  # ... under the rootdir


def test_given_values_are_converted_and_paths_resolved(tmp_path: Path) -> None:
    settings = resolve_settings(
        {
            "repeats": "5",
            "rel_tol": "0.1",
            "server_args": ["--enforce-eager"],
            "baseline_dir": "b",
            "trace_dir": "t",
            "launcher": "docker",
        },
        rootdir=tmp_path / "root",
        cwd=tmp_path / "cwd",
    )
    assert (settings.repeats, settings.rel_tol, settings.server_args, settings.launcher) == (
        5,
        0.1,
        ("--enforce-eager",),
        "docker",
    )
    assert settings.baseline_dir == tmp_path / "root" / "b"  # baseline folder: relative to the rootdir
    assert settings.trace_dir == tmp_path / "cwd" / "t"  # the attached server's folder: relative to here
    assert settings.capture_settings() == CaptureSettings(
        repeats=5, timeout_s=default("capture_timeout_s"), poll_interval_s=default("capture_poll_s")
    )
    assert settings.baseline_settings("abc").rel_tol == 0.1 and settings.baseline_settings("abc").commit == "abc"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"repeats": "0"}, "--vllm-repeats='0': must be >= 1"),
        ({"repeats": "2.5"}, "--vllm-repeats='2.5': expected an integer"),
        ({"health_timeout_s": "soon"}, "--vllm-health-timeout='soon': expected a number"),
        ({"capture_poll_s": "0.001"}, "vllm_capture_poll_s='0.001': must be >= 0.01"),  # ini only: named by its key
        ({"launcher": "k8s"}, "vllm_launcher='k8s': choose one of process, docker, url"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, raw: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        resolve_settings(raw, rootdir=tmp_path, cwd=tmp_path)
    assert str(info.value) == message


def test_a_tests_tolerances_override_the_sessions_only_where_given(tmp_path: Path) -> None:
    session = BaselineSettings(root=tmp_path, rel_tol=0.02, abs_floor_us=5.0, fail_on_drift=True, commit="c")
    assert session.with_overrides() is session
    mine = session.with_overrides(rel_tol=0.1, fail_on_drift=False)
    assert (mine.rel_tol, mine.abs_floor_us, mine.fail_on_drift, mine.commit) == (0.1, 5.0, False, "c")
    assert session.rel_tol == 0.02  # the session's own settings are left alone
