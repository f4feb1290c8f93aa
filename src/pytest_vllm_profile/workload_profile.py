"""`VllmProfile`: what the `vllm_profile` fixture hands a test, and its baseline check.

A test reads the median-of-repeats `ProfileSummary` through one-line helpers
(`profile.token_steps == 10`, `profile.layer_count == 36`, `profile.kernel(name)`,
`profile.steps_of("decode")`) and may call `profile.assert_matches_baseline()` itself;
otherwise the plugin runs the same check after the test body passed.

Baseline flow (`check_baseline` / `update_baseline`):

* normal run: load the baseline of (test node id, GPU, vLLM version); none -> a failure
  telling how to create one; else `comparator.compare_summaries` -> a failure carrying
  `Comparison.explain()` when the verdict is "fail" (with fail-on-drift off, new or missing
  kernels are reported but do not fail the verdict);
* `--update-baselines`: write the baseline (only ever called for a test whose body passed),
  noting whether the file changed; no comparison.

No pytest imports: failures are `BaselineMismatch` (an AssertionError, so a test that calls
`assert_matches_baseline()` fails like with any assert); the plugin turns them into pytest
failures.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .advice import step_structure_advice
from .baseline import BaselineEntry, BaselineStore, keys_for_summary, vllm_key
from .capture import make_capture, watched_call
from .comparator import Tolerances, compare_summaries
from .comparator_crossversion import compare_across_versions
from .comparison import Comparison
from .configuration import RunConfiguration, configuration_differences, workload_differences, workload_on_record
from .errors import BaselineError, VllmProfileError
from .latency import TimedPassResult
from .launchers.base import RunningServer
from .locks import capture_lock
from .pool import PooledServer
from .repeats import combine_repeats
from .results import RequestResult, TestVerdict
from .settings import BaselineSettings, CaptureSettings
from .summary import KernelSummary, ProfileSummary, StepKind, StepSummary
from .timed_pass import timed_pass_of
from .token_prompts import exact_length_prompts
from .workload import Workload


class BaselineMismatch(AssertionError):
    """The profile does not match its baseline, or there is no baseline to match."""


class KernelNotFoundError(VllmProfileError, LookupError):
    """`VllmProfile.kernel(name)` found no kernel of that name."""


@dataclass
class BaselineOutcome:
    """What the baseline step did for one test."""

    verdict: TestVerdict
    message: str = ""
    baseline_path: Path | None = None
    baseline_changed: bool = False
    comparison: Comparison | None = None
    baseline_summary: ProfileSummary | None = None
    baseline_timed_pass: TimedPassResult | None = None
    fails_test: bool = False


@dataclass(repr=False)
class VllmProfile:
    """The profile of one test's workload: median of its repeats, plus everything behind it."""

    nodeid: str
    workload: Workload
    summary: ProfileSummary
    spread: Any = None  # repeats.RepeatSpread
    repeat_summaries: list[ProfileSummary] = field(default_factory=list)
    requests: list[RequestResult] = field(default_factory=list)
    trace_paths: list[Path] = field(default_factory=list)
    server_vllm_version: str | None = None
    timed_pass: TimedPassResult | None = None  # the unprofiled pass (TTFT/TPOT/ITL/throughput); None: none ran
    baseline_outcome: BaselineOutcome | None = None  # set once compared (by the test or by the plugin)
    baseline_settings: BaselineSettings | None = None
    # (GPU key, vLLM version key) the baseline is stored under when not the default one
    # (the plugin's pytest_vllm_profile_baseline_key hook); see `baseline_key`.
    baseline_key_override: tuple[str, str] | None = None
    configuration: RunConfiguration | None = None  # what produced it (set by the plugin), stored with the baseline

    @property
    def comparison(self) -> Comparison | None:
        """The comparison with the baseline, once compared (None before, or without a baseline)."""
        return self.baseline_outcome.comparison if self.baseline_outcome is not None else None

    def __repr__(self) -> str:  # shown in assertion failures: keep it to what identifies the profile
        decode = self.decode_step_us
        step = f", decode step {decode:.1f} µs" if decode is not None else ""
        return (
            f"VllmProfile({self.nodeid!r}: {self.token_steps} steps x {self.layer_count} layers on "
            f"{self.gpu}{step}, {len(self.repeat_summaries)} repeat(s))"
        )

    # ---- one-line helpers ---------------------------------------------------------------
    @property
    def token_steps(self) -> int:
        return self.summary.token_steps

    @property
    def layer_count(self) -> int:
        return self.summary.layer_count

    @property
    def steps(self) -> list[StepSummary]:
        return self.summary.steps

    @property
    def kernels(self) -> list[KernelSummary]:
        return self.summary.kernels

    @property
    def gpu(self) -> str:
        return keys_for_summary(self.summary)[0]

    @property
    def vllm_version(self) -> str:
        # The server's version, else the trace's, else "unknown".
        return vllm_key(self.server_vllm_version or self.summary.runtime.vllm_version)

    @property
    def baseline_key(self) -> tuple[str, str]:
        """(GPU key, vLLM version key) of this profile's baseline entry: (gpu, vllm_version) unless overridden."""
        return self.baseline_key_override or (self.gpu, self.vllm_version)

    def step_time_us(self, kind: StepKind) -> float | None:
        """Median kernel time of one step of `kind` ("prefill", "decode", "mixed"); None if absent."""
        stats = self.summary.step_kinds.get(kind)
        return stats.median_op_time_us if stats is not None else None

    @property
    def decode_step_us(self) -> float | None:
        return self.step_time_us("decode")

    def steps_of(self, kind: str) -> list[StepSummary]:
        return self.summary.steps_of(kind)

    def kernel(self, name: str) -> KernelSummary:
        """The kernel with this full or short name; raises KernelNotFoundError naming close matches."""
        found = self.summary.kernel(name)
        if found is not None:
            return found
        names = [k.short_name for k in self.summary.kernels] + [k.name for k in self.summary.kernels]
        close = [n for n in names if name.lower() in n.lower()][:5] or difflib.get_close_matches(name, names, n=5)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise KernelNotFoundError(
            f"no kernel named {name!r} in the profile of {self.nodeid} ({len(self.summary.kernels)} kernels){hint}"
        )

    # ---- baseline -------------------------------------------------------------------------
    def assert_matches_baseline(self) -> Comparison | None:
        """Compare with the stored baseline now; raise BaselineMismatch with the explanation.

        Under --update-baselines this does nothing (returns None): the plugin writes the
        baseline after the test body passed. Returns the Comparison otherwise.
        """
        if self.baseline_settings is None:
            raise BaselineError(f"this profile of {self.nodeid} has no baseline settings (made outside the plugin)")
        if self.baseline_settings.update:
            return None
        outcome = check_baseline(self, self.baseline_settings)
        self.baseline_outcome = outcome
        if outcome.fails_test:
            raise BaselineMismatch(outcome.message)
        return outcome.comparison


def make_store(settings: BaselineSettings) -> BaselineStore:
    return BaselineStore(settings.root)


def make_tolerances(settings: BaselineSettings) -> Tolerances:
    return Tolerances.from_options(
        rel_time=settings.rel_tol, abs_floor_us=settings.abs_floor_us, fail_on_drift=settings.fail_on_drift
    )


def check_baseline(profile: VllmProfile, settings: BaselineSettings) -> BaselineOutcome:
    """Compare `profile` with its stored baseline (never writes). Raises BaselineError on a bad file."""
    store = make_store(settings)
    gpu, version = profile.baseline_key
    lookup = store.lookup(profile.nodeid, gpu, version, settings.baseline_version)
    path = Path(lookup.path)
    if lookup.entry is None and lookup.fallback is not None:  # across vLLM versions (issue 13 item 3)
        return _check_across_versions(profile, settings, lookup.fallback, version, path)
    if lookup.entry is None and settings.baseline_version and lookup.other_versions:
        return BaselineOutcome(
            verdict="no-baseline",
            fails_test=True,
            baseline_path=path,
            message=f"{lookup.message}; name one of those versions",
        )
    if lookup.entry is None:
        what_exists = f" ({lookup.message})" if lookup.message and lookup.other_gpus else ""
        return BaselineOutcome(
            verdict="no-baseline",
            fails_test=True,
            baseline_path=path,
            message=(
                f"no baseline for {profile.nodeid} on {gpu}/vLLM {version} in {path}{what_exists}; "
                "run with --update-baselines to record one"
            ),
        )
    base_summary, base_spread = lookup.entry.summary, lookup.entry.spread
    comparison = compare_summaries(
        base_summary,
        profile.summary,
        make_tolerances(settings),
        base_spread,
        profile.spread,
        step_kinds=profile.workload.compare_step_kinds,
        baseline_timed=lookup.entry.timed,
        candidate_timed=profile.timed_pass,
    )
    changed = baseline_made_differently(lookup.entry.workload, lookup.entry.configuration, profile, base_summary)
    _, noted = configuration_differences(lookup.entry.configuration, profile.configuration)
    comparison.notes.extend(f"baseline recorded with another {n}" for n in noted)
    verdict: TestVerdict
    if changed is not None:
        verdict = "fail"
        measured = (
            f"and the profile regressed against the baseline for {gpu}/vLLM {version} ({path}):\n{comparison.explain()}"
            if not comparison.passed
            else "(the profiles themselves match within the tolerances)"
        )
        message = f"{changed}\n(if the change is intended, re-record with --update-baselines)\n{measured}"
    elif comparison.passed:
        verdict, message = "pass", ""
    else:
        verdict = "fail"
        message = (
            f"profile regressed against the baseline for {gpu}/vLLM {version} ({path})\n"
            f"{comparison.explain()}\n"
            "(if the change is intended, re-record with --update-baselines)"
        )
    return BaselineOutcome(
        verdict=verdict,
        message=message,
        baseline_path=path,
        comparison=comparison,
        baseline_summary=base_summary,
        baseline_timed_pass=lookup.entry.timed,
        fails_test=verdict == "fail",
    )


def _check_across_versions(
    profile: VllmProfile, settings: BaselineSettings, entry: BaselineEntry, version: str, path: Path
) -> BaselineOutcome:
    """Compare with another vLLM version's entry: matched by kernel class and place, drift reported."""
    comparison = compare_across_versions(
        entry.summary,
        profile.summary,
        entry.vllm_version,
        version,
        make_tolerances(settings),
        entry.spread,
        profile.spread,
        step_kinds=profile.workload.compare_step_kinds,
        drift_fails=settings.cross_version_drift == "fail",
        baseline_timed=entry.timed,
        candidate_timed=profile.timed_pass,
    )
    cross = f"cross-version: vLLM {entry.vllm_version} -> {version}"
    message = (
        ""
        if comparison.passed
        else (
            f"profile regressed against the baseline for {entry.gpu}/vLLM {entry.vllm_version} "
            f"({cross}) ({path})\n{comparison.explain()}\n"
            f"(if the change is intended, record vLLM {version}'s own baseline with --update-baselines)"
        )
    )
    return BaselineOutcome(
        verdict="pass" if comparison.passed else "fail",
        message=message,
        baseline_path=path,
        comparison=comparison,
        baseline_summary=entry.summary,
        baseline_timed_pass=entry.timed,
        fails_test=not comparison.passed,
    )


def baseline_made_differently(
    base_workload: dict[str, Any],
    base_configuration: RunConfiguration | None,
    profile: VllmProfile,
    base_summary: ProfileSummary,
) -> str | None:
    """Why the baseline is not a measurement of this workload and configuration (failing), or None.

    Differences that do not fail (versions, hardware, environment) are added to the profile's
    comparison notes by the caller's comparison; here: the marker, the session's server args and
    the profiler (the torch profiler and nsys find steps and attribute kernels differently).
    """
    today = workload_on_record(profile.workload)  # redacted, as the baseline stored it
    reasons = [f"vllm_workload {change}" for change in workload_differences(base_workload, today)]
    if base_summary.runtime.profiler != profile.summary.runtime.profiler:
        reasons.append(
            f"profiler {base_summary.runtime.profiler} -> {profile.summary.runtime.profiler} (keep each "
            "profiler's baselines apart: --baseline-dir)"
        )
    failing, _ = configuration_differences(base_configuration, profile.configuration)
    reasons += failing
    if not reasons:
        return None
    return (
        "the baseline was recorded with a different workload or configuration, so the profiles are not "
        "comparable: " + "; ".join(reasons)
    )


def update_baseline(profile: VllmProfile, settings: BaselineSettings) -> BaselineOutcome:
    """Write `profile` as the baseline of its (test, GPU, vLLM version); note whether the file changed."""
    store = make_store(settings)
    path = Path(store.path_for(profile.nodeid))
    existed = path.is_file()
    gpu, version = profile.baseline_key
    changed = store.save(
        profile.nodeid,
        gpu,
        version,
        profile.summary,
        spread=profile.spread,
        workload=workload_on_record(profile.workload),
        repeats=max(1, len(profile.repeat_summaries)),
        commit=settings.commit,
        configuration=profile.configuration,
        timed_pass=profile.timed_pass,
    )
    verb = "created" if not existed else ("updated" if changed else "unchanged")
    return BaselineOutcome(
        verdict="updated",  # baseline_changed tells whether the file's content changed
        message=f"baseline {verb} for {gpu}/vLLM {version}: {path}",
        baseline_path=path,
        baseline_changed=changed,
    )


def profile_workload(
    nodeid: str,
    workload: Workload,
    pooled: PooledServer,
    capture: CaptureSettings,
    baseline: BaselineSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> VllmProfile:
    """Capture `workload` on the pooled server `repeats` times, summarize each, combine them.

    Captures on one server are serialized through a lock file in its trace folder, so xdist
    workers attached to one shared server (url launcher) never see each other's traces.
    """
    from .analysis import summarize_path  # heavy (pandas); only needed once a test runs

    repeats = workload.repeats or capture.repeats
    timed_repeats = workload.timed_repeats if workload.timed_repeats is not None else capture.timed_repeats
    server = pooled.server
    timed = None
    if timed_repeats > 0:
        if progress is not None:
            progress(f"timed pass of {nodeid}: {timed_repeats} repeat(s) without the profiler")
        # Before the profiled pass, outside /start_profile../stop_profile (the profiler would slow
        # what a user waits for), under the capture lock so no other worker's capture overlaps it.
        # Watched like the profiled pass: a server that dies meanwhile fails the test at once, by its cause.
        with capture_lock(server.trace_dir):
            timed = watched_call(
                lambda: timed_pass_of(
                    workload, server.base_url, server.model_name, timed_repeats, timeout_s=capture.timeout_s
                ),
                pooled.launcher,
            )
    # The profiled pass sends the prompts the timed pass did (exact input_len ones built on the server).
    prompts = _timed_prompts(workload, server) if workload.input_len is not None else None
    summaries: list[ProfileSummary] = []
    requests: list[RequestResult] = []
    trace_paths: list[Path] = []
    say = progress or (lambda message: None)
    for repeat in range(repeats):
        say(
            f"capture {repeat + 1}/{repeats} of {nodeid}: {len(workload.prompts)} prompt(s), "
            f"max_tokens={workload.max_tokens}"
        )
        with capture_lock(server.trace_dir):
            result = make_capture(
                server,
                workload,
                timeout_s=capture.timeout_s,
                launcher=pooled.launcher,
                poll_interval_s=capture.poll_interval_s,
                label=nodeid,
                prompts=prompts,
            ).run()
        ranks = result.rank_trace_files
        # One worker trace: read it alone (the folder also holds the API-server's CPU trace);
        # several ranks (tensor parallel): the folder is one multi-rank profile.
        target = ranks[0] if len(ranks) == 1 else result.trace_root
        say(f"analysing {target}")
        summaries.append(summarize_path(target))
        requests.extend(result.requests)
        trace_paths.extend(result.trace_files)
    combined, spread = combine_repeats(summaries, workload.compare_step_kinds, step_structure_advice(workload))
    # The server's own answer wins, as in VllmProfile.vllm_version (the baseline key), so the
    # results and reports name the same version; traces of vLLM < 0.3x do not say it at all.
    combined.runtime.vllm_version = pooled.server.vllm_version or combined.runtime.vllm_version
    nsys_control = getattr(pooled.launcher, "nsys_control", None)  # nsys runs: "session, nsys 2022.4.2.1"
    if nsys_control is not None:
        combined.runtime.nsys_capture = nsys_control.describe()
    return VllmProfile(
        nodeid=nodeid,
        workload=workload,
        summary=combined,
        spread=spread,
        repeat_summaries=summaries,
        requests=requests,
        trace_paths=trace_paths,
        server_vllm_version=pooled.server.vllm_version,
        timed_pass=timed,
        baseline_settings=baseline,
    )


def _timed_prompts(workload: Workload, server: RunningServer) -> list[str]:
    """Prompts of exactly `workload.input_len` tokens, built on the server (deterministic: the same
    ones the timed pass sent)."""
    import httpx

    assert workload.input_len is not None
    with httpx.Client(timeout=60.0) as client:
        return exact_length_prompts(
            client,
            server.base_url,
            server.model_name,
            workload.input_len,
            count=workload.requests_per_timed_repeat,
            api="chat" if workload.api == "chat" else "completions",
        )
