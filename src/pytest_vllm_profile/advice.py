"""Advice that matches the cause: what to change in a `vllm_workload` marker when its repeats
(or its baseline) differ in step structure.

Issue 15: an unchanged batched test failed with "differ in token_steps: 16 vs 17: the workload
is not deterministic (use temperature=0, ignore_eos=True and a fixed max_tokens)" -- those are
already the defaults. How vLLM's scheduler splits a batch of prompts between prefill and mixed
steps depends on timing, so the remedy for a batch is comparing only its decode steps.
"""

from __future__ import annotations

from .repeats import GENERIC_ADVICE
from .workload import Workload


def sampling_fixes(workload: Workload) -> list[str]:
    """The marker arguments that make generation non-deterministic, as `name=value` fixes."""
    fixes = []
    if workload.temperature != 0:
        fixes.append(f"temperature=0 (it is {workload.temperature!r})")
    if not workload.ignore_eos:
        fixes.append("ignore_eos=True (it is False: a request may stop early at end of sequence)")
    return fixes


def is_batched(workload: Workload) -> bool:
    """Several prompts in flight at once: the scheduler decides how they share steps."""
    return len(workload.prompts) > 1 or workload.concurrency > 1


def step_structure_advice(workload: Workload | None) -> str:
    """What to do about repeats that differ in step structure, for this workload."""
    if workload is None:
        return GENERIC_ADVICE
    fixes = sampling_fixes(workload)
    if fixes:
        return "set " + " and ".join(fixes) + " in the vllm_workload marker"
    already = f"sampling is already deterministic (temperature=0, ignore_eos=True, max_tokens={workload.max_tokens})"
    decode_only = workload.compare_step_kinds == ("decode",)
    if decode_only:
        return (
            f"{already} and only decode steps are compared; the number of decode steps changed, so the "
            "requests did not all run to max_tokens or the server's scheduling settings differ between "
            "repeats (check its server_args, e.g. --max-num-seqs / --max-num-batched-tokens)"
        )
    if is_batched(workload):
        return (
            f"{already}; with {workload.requests_per_timed_repeat} prompts in one batch, how vLLM's scheduler splits them "
            "between prefill and mixed steps depends on timing: compare only the decode steps with "
            'compare_step_kinds=["decode"] in the vllm_workload marker'
        )
    return (
        f"{already}; with one prompt, a different step count means the server scheduled it differently "
        "between repeats (chunked prefill, or another client's requests on a shared server); "
        'compare_step_kinds=["decode"] compares only the decode steps'
    )
