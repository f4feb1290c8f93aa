"""pytest hooks and fixtures: a thin layer over the library (the only package that imports pytest).

What a run does
---------------
* `@pytest.mark.vllm_workload(model=..., max_tokens=..., ...)` declares a workload. Its
  arguments are validated while collecting (`Workload.from_marker_kwargs`); a typo or a
  missing `model=` is a collection error naming the test and the argument (exit code 2),
  with or without `--vllm-profile`. Markers on the module/class and the function merge,
  the closest one winning per argument. `rel_tol=`, `abs_floor_us=` and `fail_on_drift=`
  on the marker override the session's tolerances for that test.
* Without `--vllm-profile`, marked tests are SKIPPED with the reason
  "vLLM profiling tests need --vllm-profile (and a GPU/vLLM server)"; never passed silently.
* `vllm_server_pool` (session): one server per distinct server identity (see `pool.py`).
  `vllm_profile` (function): captures the workload `repeats` times on its pooled server,
  summarizes and combines the repeats, and returns a `workload_profile.VllmProfile`. A marked test
  that does not request `vllm_profile` gets it anyway: it is then a pure baseline check.

Baseline flow
-------------
After the test BODY PASSED (its own structural asserts), a `pytest_runtest_call` wrapper
checks the profile against the stored baseline, inside the call phase, so a regression is a
test FAILURE whose message is `Comparison.explain()` (not an error, no plugin traceback):

* no baseline for (test, GPU, vLLM version): failure "no baseline for ... run with
  --update-baselines" (never a silent pass);
* the test already called `profile.assert_matches_baseline()`: that result stands;
* `--update-baselines`: the baseline is written instead (only for passed bodies: a failed
  body raises out of the call before the wrapper gets to it), changed files are listed in
  the terminal summary;
* an invalid baseline file: failure naming the file and what is wrong.

The structural check `expected_layers=` of the marker runs first, like a test assert.

Modules
-------
`options` (the option table of `option_table.py` as addoption/addini, read back), `state`
(session state; per-test state in one typed stash entry), `marker` (the marker's doc,
merging, collection checks), `fixtures`, `hooks` (the pytest hooks implemented),
`hookspecs` (the hooks this plugin offers, docs/hooks.md) with their defaults in
`builtin_hooks`, `run_results` (TestResult / RunResults from the plugin's state) and
`reporting` (JUnit properties, results file, HTML / job summary, terminal section),
`preflight` / `session_checks` (checks before any server boots, the quiet stop), `progress`
(progress lines), `messages` (failure wording), `record` (the configuration on record).
"""

from .fixtures import vllm_profile, vllm_server_pool
from .hooks import (
    pytest_addhooks,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_configure_node,
    pytest_pycollect_makeitem,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
    pytest_unconfigure,
)
from .marker import MARKER, SKIP_REASON, workload_of
from .state import ITEM_KEY, SESSION_KEY, ItemState, SessionState

__all__ = [
    "ITEM_KEY",
    "MARKER",
    "SESSION_KEY",
    "SKIP_REASON",
    "ItemState",
    "SessionState",
    "workload_of",
    "vllm_profile",
    "vllm_server_pool",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_configure",
    "pytest_configure_node",
    "pytest_pycollect_makeitem",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_unconfigure",
    "pytest_collection_modifyitems",
    "pytest_sessionstart",
]
