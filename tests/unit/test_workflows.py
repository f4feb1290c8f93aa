"""The GitHub workflows, checked with real linters: actionlint and GitHub's workflow JSON schema
(vendored by check-jsonschema). Both come from PyPI with the `test` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO

WORKFLOWS = REPO / ".github" / "workflows"
NIGHTLY = WORKFLOWS / "nightly.yml"
CI = WORKFLOWS / "ci.yml"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (pip install -e '.[test]' installs it)")
    return path


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    # -shellcheck= : run: scripts are checked by shellcheck only where it is installed; keep the
    # result the same on every machine.
    return subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck=", *map(str, files)], capture_output=True, text=True, timeout=60
    )


def schema_check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _yaml(path: Path) -> dict:  # type: ignore[type-arg]
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(path.read_text())


def test_workflows_pass_actionlint() -> None:
    run = actionlint(NIGHTLY, CI)
    assert run.returncode == 0, run.stdout + run.stderr


def test_workflows_match_githubs_workflow_schema() -> None:
    run = schema_check(NIGHTLY, CI)
    assert run.returncode == 0, run.stdout + run.stderr


def test_actionlint_flags_a_broken_copy_of_the_nightly_workflow(tmp_path: Path) -> None:
    text = NIGHTLY.read_text()
    assert "steps.gpus.outputs.count" in text
    broken = tmp_path / "nightly.yml"
    broken.write_text(text.replace("steps.gpus.outputs.count", "steps.gpu.outputs.count"))
    run = actionlint(broken)
    assert run.returncode != 0
    assert 'property "gpu" is not defined' in run.stdout


def test_schema_flags_a_job_without_runs_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: echo hi\n")
    run = schema_check(bad)
    assert run.returncode != 0
    assert "runs-on" in run.stdout + run.stderr


def test_nightly_runs_the_plugin_on_a_configurable_gpu_runner() -> None:
    wf = _yaml(NIGHTLY)
    on = wf.get("on") or wf.get(True)  # YAML 1.1 reads a bare `on` key as True
    assert "schedule" in on and on["schedule"][0]["cron"]
    assert "runner_labels" in on["workflow_dispatch"]["inputs"]
    job = wf["jobs"]["profile"]
    assert "vars.VLLM_PROFILE_RUNNER_LABELS" in job["runs-on"] and "fromJSON(" in job["runs-on"]
    assert job["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "pip install -e '.[test,report,docker,gpu]'" in runs
    pytest_step = next(s for s in job["steps"] if "--vllm-profile" in s.get("run", ""))
    cmd = pytest_step["run"]
    for flag in ('-n "${{ steps.gpus.outputs.count }}"', "--vllm-report report/", "--vllm-results report/results.json"):
        assert flag in cmd
    # pytest's exit code fails the job: the step neither swallows it nor continues on error.
    assert "continue-on-error" not in pytest_step and "|| true" not in cmd
    after = job["steps"][job["steps"].index(pytest_step) + 1 :]
    assert after and all(str(s.get("if", "")).startswith("always()") for s in after)
    # The plugin writes the job summary and appends to the history itself; the report step plots
    # the history, the gate step fails the job on a slowdown found in it.
    assert '--vllm-history="$HISTORY"' in cmd
    assert any("vllm-profile report" in s.get("run", "") and '--history "$HISTORY"' in s.get("run", "") for s in after)
    assert any("vllm-profile history" in s.get("run", "") and "--gate" in s.get("run", "") for s in after)
    uploads = [s for s in after if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert any("report/" in s["with"]["path"] and "traces/" in s["with"]["path"] for s in uploads)
    assert any(str(s.get("uses", "")).startswith("actions/cache/save") for s in after)


def test_ci_runs_the_readme_test_command_on_push_and_pull_request() -> None:
    wf = _yaml(CI)
    on = wf.get("on") or wf.get(True)
    assert "push" in on and "pull_request" in on
    runs = [s.get("run", "") for job in wf["jobs"].values() for s in job["steps"]]
    assert any("bash scripts/test.sh" in r for r in runs)


def test_setup_report_tools_is_idempotent_when_chromium_is_there() -> None:
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed; the script would install it")
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-report-tools.sh")], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and run.stdout == ""  # nothing to do, nothing installed
