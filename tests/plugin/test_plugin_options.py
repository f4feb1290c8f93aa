"""The plugin's command line, marker and collection behaviour (pytester; no server needed)."""

from __future__ import annotations

import re

import pytest

from pytest_vllm_profile.plugin import ITEM_KEY, SKIP_REASON, workload_of
from pytest_vllm_profile.settings import OPTIONS as OPTION_TABLE
from pytest_vllm_profile.settings import Option
from support.paths import REPO


def help_form(option: Option) -> str:
    """How `pytest --help` shows a flag: `--flag`, `--flag=METAVAR` or `--flag={a,b}`."""
    assert option.flag is not None
    if option.choices:
        return f"{option.flag}={{{','.join(option.choices)}}}"
    return f"{option.flag}={option.metavar}" if option.metavar else option.flag


OPTIONS = [help_form(o) for o in OPTION_TABLE if o.flag is not None]
INI_KEYS = [(o.ini, {"bool": "bool", "args": "args"}.get(o.type, "string")) for o in OPTION_TABLE if o.ini]
RELEASED_FLAGS = {
    "--vllm-profile",
    "--update-baselines",
    "--baseline-dir",
    "--vllm-launcher",
    "--vllm-url",
    "--vllm-trace-dir",
    "--vllm-python",
    "--vllm-image",
    "--vllm-allow-pull",
    "--vllm-docker-host",
    "--vllm-profiler",
    "--vllm-repeats",
    "--vllm-rel-tol",
    "--vllm-abs-floor-us",
    "--vllm-no-fail-on-drift",
    "--vllm-server-arg",
    "--vllm-health-timeout",
    "--vllm-capture-timeout",
    "--vllm-max-servers",
    "--vllm-workers-per-gpu",
    "--vllm-results",
    "--vllm-report",
    "--vllm-trace-root",
}

MARKED = """
import pytest

@pytest.mark.vllm_workload(model="Qwen/Qwen3-8B", max_tokens=10)
def test_decode(vllm_profile):
    assert vllm_profile.token_steps == 10

def test_plain():
    assert True
"""


def test_every_option_is_in_help_under_the_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["vLLM profiling regression tests (pytest-vllm-profile):"])
    result.stdout.fnmatch_lines([f"  {opt}*" for opt in OPTIONS], consecutive=False)
    result.stdout.fnmatch_lines([f"  {ini} ({kind}):*" for ini, kind in INI_KEYS], consecutive=False)
    # The table still has every option 0.1.0 had (a lost row would drop one silently) ...
    assert RELEASED_FLAGS <= {o.flag for o in OPTION_TABLE}
    # ... and its flags are the whole group, each documented in the README.
    group = result.stdout.str().split("vLLM profiling regression tests (pytest-vllm-profile):\n")[1].split("\n\n")[0]
    in_help = re.findall(r"^  (--[\w-]+)", group, flags=re.MULTILINE)
    assert sorted(in_help) == sorted(opt.split("=")[0] for opt in OPTIONS)
    readme = (REPO / "README.md").read_text()
    assert [name for name in in_help if f"`{name}" not in readme] == []


def test_marker_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.vllm_workload(model=..., max_tokens=, prompts=, repeats=*--vllm-profile*"]
    )


def test_workload_tests_are_skipped_with_the_reason_without_vllm_profile(
    pytester: pytest.Pytester, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest("-rs", *xdist_args)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED * {SKIP_REASON}"])
    assert not (pytester.path / ".vllm-profile" / "results.json").exists()  # nothing ran: no results file


def test_marker_only_test_is_skipped_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        pytestmark = pytest.mark.vllm_workload(model="m")
        def test_baseline_only():
            pass
    """)
    pytester.runpytest().assert_outcomes(skipped=1)


@pytest.mark.parametrize(
    "flag", [(), ("--vllm-profile", "--vllm-launcher", "url", "--vllm-url", "http://x:1", "--vllm-trace-dir", ".")]
)
def test_misspelled_marker_argument_is_a_collection_error(
    pytester: pytest.Pytester, flag: tuple[str, ...], xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.vllm_workload(model="m", max_token=10)
        def test_typo(vllm_profile):
            pass

        def test_fine():
            pass
    """
    )
    result = pytester.runpytest(*flag, *xdist_args)
    # 2: errors during collection; pytest-xdist reports a worker's collection error as exit code 1
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if xdist_args else pytest.ExitCode.INTERRUPTED)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_typo.py*",
            "*invalid @pytest.mark.vllm_workload: test_typo.py::test_typo: unknown vllm_workload argument(s) max_token;*",
        ]
    )
    result.assert_outcomes(errors=1)


def _assert_collection_error(pytester: pytest.Pytester, module: str, source: str, line: str) -> None:
    """Collecting `module` (with `source`) stops the run with exit code 2 and prints `line`."""
    pytester.makepyfile(**{module: source})
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # 2: errors during collection
    result.stdout.fnmatch_lines([line])


def test_marker_without_model_is_a_collection_error(pytester: pytest.Pytester) -> None:
    _assert_collection_error(
        pytester,
        "test_nomodel",
        """
        import pytest

        class TestGroup:
            @pytest.mark.vllm_workload(max_tokens=10)
            def test_it(self):
                pass
    """,
        "*test_nomodel.py::TestGroup::test_it: vllm_workload needs model=*",
    )


def test_bad_marker_value_names_the_argument(pytester: pytest.Pytester) -> None:
    _assert_collection_error(
        pytester,
        "test_bad",
        """
        import pytest

        @pytest.mark.vllm_workload(model="m", max_tokens=0)
        def test_zero():
            pass
    """,
        "*test_bad.py::test_zero: vllm_workload max_tokens=0: must be a positive integer*",
    )


def test_fixture_without_marker_is_a_collection_error(pytester: pytest.Pytester) -> None:
    _assert_collection_error(
        pytester,
        "test_nomarker",
        """
        def test_forgot(vllm_profile):
            pass
    """,
        "*test_nomarker.py::test_forgot: uses the vllm_profile fixture but has no*",
    )


def test_module_marker_and_function_marker_merge(pytester: pytest.Pytester) -> None:
    item = pytester.getitem(
        """
        import pytest

        pytestmark = pytest.mark.vllm_workload(model="m", max_tokens=10, server_args=["--enforce-eager"])

        @pytest.mark.vllm_workload(max_tokens=4)
        def test_func():
            pass
    """,
        funcname="test_func",
    )
    wl = workload_of(item)
    assert (wl.model, wl.max_tokens, wl.server_args) == ("m", 4, ("--enforce-eager",))
    assert item.stash[ITEM_KEY].workload == wl  # attached while collecting
    assert "vllm_profile" in item.fixturenames  # a marker alone still profiles (baseline check)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--vllm-launcher", "url"), "*--vllm-launcher url needs --vllm-url URL*"),
        (("--vllm-launcher", "url", "--vllm-url", "http://127.0.0.1:1"), "*needs --vllm-trace-dir DIR*"),
        (
            ("--vllm-launcher", "url", "--vllm-url", "127.0.0.1:1", "--vllm-trace-dir", "."),
            "*must start with http:// or https://*",
        ),
        (
            ("--vllm-launcher", "url", "--vllm-url", "http://h:1", "--vllm-trace-dir", "nowhere"),
            "*--vllm-trace-dir */nowhere: no such folder*",
        ),
        (("--vllm-url", "http://h:1"), "*--vllm-url is only used with --vllm-launcher url*"),
        (("--vllm-repeats", "0"), "*--vllm-repeats='0': must be >= 1*"),
        (("--vllm-rel-tol", "two"), "*--vllm-rel-tol='two': expected a number*"),
        (("--vllm-python", "/no/such/python"), "*--vllm-python /no/such/python: no such interpreter*"),
        (("--vllm-image", "vllm/vllm-openai:v0.26.0"), "*need --vllm-launcher docker*"),
    ],
)
def test_invalid_option_values_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...], message: str) -> None:
    result = pytester.runpytest("--vllm-profile", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_ini_keys_are_read_and_the_command_line_wins(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvllm_launcher = url\n")
    result = pytester.runpytest("--vllm-profile")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # the ini chose url, which needs a URL
    result.stderr.fnmatch_lines(["ERROR: *--vllm-launcher url needs --vllm-url*"])
    result = pytester.runpytest("--vllm-profile", "--vllm-launcher", "process")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # option overrides the ini: no usage error


def test_option_validation_is_only_about_launchers_when_profiling(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvllm_launcher = url\n")
    pytester.makepyfile(test_marked=MARKED)
    pytester.runpytest().assert_outcomes(passed=1, skipped=1)


def test_plain_run_prints_no_vllm_profile_section(pytester: pytest.Pytester, xdist_args: tuple[str, ...]) -> None:
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest(*xdist_args)
    assert "= vllm-profile =" not in result.stdout.str()  # (the plugin list names it too)
    result.assert_outcomes(passed=1, skipped=1)
