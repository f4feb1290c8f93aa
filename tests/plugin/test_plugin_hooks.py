"""The plugin's hooks (plugin/hookspecs.py): a conftest implementing one changes what a session does.

Sessions run against the recorded-trace HTTP double (tests/support/double_sessions.py), without
xdist and with `-n 2` (the hooks then run in the worker processes).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_vllm_profile.launchers.base import ServerSpec
from pytest_vllm_profile.launchers.docker import DockerLauncher
from pytest_vllm_profile.launchers.process import ProcessLauncher
from pytest_vllm_profile.launchers.url import UrlLauncher
from pytest_vllm_profile.plugin import SESSION_KEY
from support.double_sessions import H100, WORKLOAD_TEST, baseline_file, load_results, record_baseline, run
from support.paths import DOCS
from support.vllm_double import DOUBLE_MODEL, RECORDED_VLLM_VERSION, RecordedTraceDouble


def hook_log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_built_in_launchers_are_the_default_make_launcher_implementations(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    impls = {impl.plugin_name for impl in config.pluginmanager.hook.pytest_vllm_profile_make_launcher.get_hookimpls()}
    assert impls == {"vllm-profile-launcher-process", "vllm-profile-launcher-docker", "vllm-profile-launcher-url"}
    settings = config.stash[SESSION_KEY].settings
    made = {
        name: config.hook.pytest_vllm_profile_make_launcher(
            config=config, spec=ServerSpec(model="m"), settings=replace(settings, launcher=name, url="http://h:1")
        )
        for name in ("process", "docker", "url")
    }
    assert [type(made[n]) for n in ("process", "docker", "url")] == [ProcessLauncher, DockerLauncher, UrlLauncher]
    assert made["url"].url == "http://h:1"  # type: ignore[attr-defined]


def test_make_launcher_from_a_conftest_serves_the_session(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    tmp_path: Path,
    xdist_args: tuple[str, ...],
) -> None:
    # The session asks for the process launcher (no vLLM here: it would fail to boot); the
    # conftest's implementation attaches to the double instead.
    log = tmp_path / "launchers.jsonl"
    pytester.makeconftest(f"""
        import dataclasses, json
        from pathlib import Path
        from pytest_vllm_profile.launchers.url import UrlLauncher

        def pytest_vllm_profile_make_launcher(config, spec, settings):
            with open({str(log)!r}, "a") as handle:
                handle.write(json.dumps({{"asked": settings.launcher, "model": spec.model}}) + "\\n")
            return UrlLauncher(dataclasses.replace(spec, trace_dir=Path({str(recorded_trace_double.trace_dir)!r})),
                               url={recorded_trace_double.url!r})
    """)
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    result = pytester.runpytest(
        "--vllm-profile",
        "--vllm-launcher=process",
        "--vllm-repeats=1",
        "--update-baselines",
        "-o",
        "vllm_capture_poll_s=0.05",
        "-p",
        "no:cacheprovider",
        *xdist_args,
    )
    result.assert_outcomes(passed=1)
    assert hook_log(log) == [{"asked": "process", "model": DOUBLE_MODEL}]  # one server booted, by the conftest
    assert "POST /start_profile" in recorded_trace_double.state.calls
    assert baseline_file(pytester).is_file()


def test_baseline_key_from_a_conftest_names_the_stored_entry_and_the_lookup(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    xdist_args: tuple[str, ...],
) -> None:
    conftest = pytester.makeconftest("""
        def pytest_vllm_profile_baseline_key(item, profile):
            return "gpu-class-" + profile.gpu.split()[1], "vllm-" + profile.vllm_version
    """)
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    result = run(pytester, recorded_trace_double, "--update-baselines", *xdist_args)
    result.assert_outcomes(passed=1)
    entries = json.loads(baseline_file(pytester).read_text())["entries"]
    assert list(entries) == ["gpu-class-H100"] and list(entries["gpu-class-H100"]) == [f"vllm-{RECORDED_VLLM_VERSION}"]
    run(pytester, recorded_trace_double, *xdist_args).assert_outcomes(passed=1)  # looked up under the same key
    conftest.unlink()  # the default key: the GPU model and version the profile names
    result = run(pytester, recorded_trace_double, *xdist_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*no baseline for test_workload.py::test_decode on {H100}/vLLM "
            f"{RECORDED_VLLM_VERSION} in *; the file has entries for GPU(s) gpu-class-H100*"
        ]
    )


def test_commit_from_a_conftest_is_recorded_in_baselines_and_results(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    monkeypatch: pytest.MonkeyPatch,
    xdist_args: tuple[str, ...],
) -> None:
    monkeypatch.setenv("GITHUB_SHA", "sha-from-the-environment")  # the default's first choice
    record_baseline(pytester, recorded_trace_double, *xdist_args)
    entry = json.loads(baseline_file(pytester).read_text())["entries"][H100][RECORDED_VLLM_VERSION]
    assert entry["commit"] == load_results(pytester).commit == "sha-from-the-environment"

    pytester.makeconftest("""
        def pytest_vllm_profile_commit(config):
            return "commit-from-conftest"
    """)
    run(pytester, recorded_trace_double, "--update-baselines", *xdist_args).assert_outcomes(passed=1)
    entry = json.loads(baseline_file(pytester).read_text())["entries"][H100][RECORDED_VLLM_VERSION]
    # the worker writes the baseline, the controller the results file: both asked the hook
    assert entry["commit"] == load_results(pytester).commit == "commit-from-conftest"


VERDICT_CONFTEST = """
    import json

    def pytest_vllm_profile_verdict(item, profile, outcome):
        comparison = outcome.comparison
        decode = None
        if comparison is not None:
            decode = next(round(st.delta_pct, 1) for st in comparison.step_times if st.kind == "decode")
        with open({log!r}, "a") as handle:
            handle.write(json.dumps({{"test": item.nodeid, "verdict": outcome.verdict, "decode_delta_pct": decode,
                                      "layers": profile.layer_count}}) + "\\n")
"""


def test_verdict_hook_gets_each_tests_outcome_and_comparison(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    slowed_trace: Path,
    tmp_path: Path,
    xdist_args: tuple[str, ...],
) -> None:
    log = tmp_path / "verdicts.jsonl"
    pytester.makeconftest(VERDICT_CONFTEST.format(log=str(log)))
    record_baseline(pytester, recorded_trace_double, *xdist_args)
    recorded_trace_double.serve(slowed_trace)
    result = run(pytester, recorded_trace_double, *xdist_args)
    result.assert_outcomes(failed=1)  # the hook is called before the failure, which still fails the test
    node = "test_workload.py::test_decode"
    assert hook_log(log) == [
        {"test": node, "verdict": "updated", "decode_delta_pct": None, "layers": 36},
        {"test": node, "verdict": "fail", "decode_delta_pct": 5.0, "layers": 36},
    ]
    # A body that compares itself (and fails there) reports its verdict too.
    log.unlink()
    pytester.makepyfile(
        test_workload=f"""
        import pytest

        @pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0)
        def test_decode(vllm_profile):
            vllm_profile.assert_matches_baseline()
    """
    )
    run(pytester, recorded_trace_double, *xdist_args).assert_outcomes(failed=1)
    assert hook_log(log) == [{"test": node, "verdict": "fail", "decode_delta_pct": 5.0, "layers": 36}]


def test_the_worked_example_of_docs_hooks_md_does_what_it_says(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    slowed_trace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (DOCS / "hooks.md").read_text()
    example = text.split("```python\n# conftest.py\n")[1].split("```")[0]
    posted = tmp_path / "posted.jsonl"
    # The dashboard is not there: its POSTs go to a file (the example calls urllib.request.urlopen at call time).
    pytester.makeconftest(
        textwrap.dedent(f"""
        import urllib.request

        def _post_to_file(request, timeout):
            with open({str(posted)!r}, "a") as handle:
                handle.write(request.data.decode() + "\\n")

        urllib.request.urlopen = _post_to_file
    """)
        + "\n"
        + example
    )
    monkeypatch.setenv("BUILD_ID", "build-42")
    record_baseline(pytester, recorded_trace_double)
    entries = json.loads(baseline_file(pytester).read_text())["entries"]
    assert list(entries) == ["H100"] and list(entries["H100"]) == ["0.26"]
    assert entries["H100"]["0.26"]["commit"] == "build-42"
    recorded_trace_double.serve(slowed_trace)
    run(pytester, recorded_trace_double).assert_outcomes(failed=1)
    assert [(p["verdict"], p["gpu"], p["decode_delta_pct"] is not None) for p in hook_log(posted)] == [
        ("updated", H100, False),
        ("fail", H100, True),
    ]
