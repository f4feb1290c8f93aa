"""`Workload`: what a `@pytest.mark.vllm_workload(...)` marker declares, validated.

No pytest imports: the plugin passes the marker's args/kwargs to `Workload.from_marker_kwargs`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import WorkloadError
from .latency import LoadShape
from .redact import redact_args, redact_env
from .summary import STEP_KINDS

DEFAULT_PROMPT = "What is the capital of France?"
API_KINDS: tuple[str, ...] = ("completions", "chat")
ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "constant")
# Marker arguments that override the session's comparison tolerances for one test.
TOLERANCE_ARGS = ("rel_tol", "abs_floor_us", "fail_on_drift")


@dataclass(frozen=True)
class Workload:
    model: str
    max_tokens: int = 10
    prompts: tuple[str, ...] = (DEFAULT_PROMPT,)
    repeats: int | None = None  # None: use --vllm-repeats
    warmup_requests: int = 1
    temperature: float = 0.0
    ignore_eos: bool = True
    batch: bool = True  # all prompts in one completion request (vLLM batches them into one step)
    server_args: tuple[str, ...] = ()  # extra `vllm serve` arguments, e.g. ("--enforce-eager",)
    env: tuple[tuple[str, str], ...] = ()  # extra server environment
    served_model_name: str | None = None
    tensor_parallel_size: int = 1
    expected_layers: int | None = None  # decoder layers per step, if the test wants it checked structurally
    # Step kinds whose per-step metrics the baseline comparison looks at (None: all). E.g.
    # ("decode",) when how a batch splits between prefill and mixed steps depends on timing.
    compare_step_kinds: tuple[str, ...] | None = None
    # ---- per-test tolerances: None keeps the session's --vllm-rel-tol / --vllm-abs-floor-us /
    # --vllm-no-fail-on-drift (ini) value. Not part of the server identity (server_key).
    rel_tol: float | None = None
    abs_floor_us: float | None = None
    fail_on_drift: bool | None = None

    # ---- timed pass, load shape and profiler needs (issue 12); validated in _validate_load_shape ----
    timed_repeats: int | None = None  # timed (unprofiled) repeats; None: the session's setting; 0: none
    concurrency: int = 1  # most requests in flight at once in the timed pass
    num_requests: int | None = None  # requests per timed repeat; None: max(concurrency, len(prompts))
    input_len: int | None = None  # exact prompt length in tokens, built with the server's /tokenize
    api: str = "completions"  # "completions" (/v1/completions) or "chat" (/v1/chat/completions)
    request_rate: float | None = None  # requests/s in the timed pass; None: all at once
    arrival: str = "poisson"  # with request_rate: "poisson" (seeded, like vllm bench) or "constant"
    seed: int = 0  # arrival draw
    with_stack: bool = False  # torch_profiler_with_stack: Python stacks for attribution (slow to flush)

    @classmethod
    def from_marker_kwargs(cls, test_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Workload:
        """Validate a marker's arguments; every error names the test and the argument."""
        if args:
            raise WorkloadError(f"{test_id}: vllm_workload takes keyword arguments only, got positional {args!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise WorkloadError(
                f"{test_id}: unknown vllm_workload argument(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        if "model" not in kwargs:
            raise WorkloadError(f"{test_id}: vllm_workload needs model=... (a model name or local folder)")
        if kwargs.get("input_len") is not None and "prompts" in kwargs:
            raise WorkloadError(
                f"{test_id}: vllm_workload input_len= cannot be combined with prompts=: "
                "the prompts are generated to that length with the server's tokenizer"
            )
        kw = dict(kwargs)
        try:
            if isinstance(kw.get("prompts"), str):
                raise WorkloadError(f"{test_id}: vllm_workload prompts= must be a list of strings, not one string")
            if "prompts" in kw:
                kw["prompts"] = tuple(kw["prompts"])
            if "server_args" in kw:
                if isinstance(kw["server_args"], str):
                    raise WorkloadError(
                        f"{test_id}: vllm_workload server_args= must be a list, e.g. ['--enforce-eager']"
                    )
                kw["server_args"] = tuple(str(a) for a in kw["server_args"])
            if kw.get("compare_step_kinds") is not None:
                if isinstance(kw["compare_step_kinds"], str):
                    raise WorkloadError(f"{test_id}: vllm_workload compare_step_kinds= must be a list, e.g. ['decode']")
                kw["compare_step_kinds"] = tuple(kw["compare_step_kinds"])
            if "env" in kw:
                kw["env"] = tuple(sorted((str(k), str(v)) for k, v in dict(kw["env"]).items()))
        except (TypeError, ValueError) as exc:
            raise WorkloadError(f"{test_id}: invalid vllm_workload argument: {exc}") from None
        wl = cls(**kw)
        wl._validate(test_id)
        return wl

    def _validate(self, test_id: str) -> None:
        def bad(arg: str, why: str) -> WorkloadError:
            return WorkloadError(f"{test_id}: vllm_workload {arg}={getattr(self, arg)!r}: {why}")

        if not isinstance(self.model, str) or not self.model:
            raise bad("model", "must be a non-empty string")
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 1:
            raise bad("max_tokens", "must be a positive integer")
        if not self.prompts or not all(isinstance(p, str) and p for p in self.prompts):
            raise bad("prompts", "must be a non-empty list of non-empty strings")
        if self.repeats is not None and (not isinstance(self.repeats, int) or self.repeats < 1):
            raise bad("repeats", "must be a positive integer")
        if not isinstance(self.warmup_requests, int) or self.warmup_requests < 0:
            raise bad("warmup_requests", "must be an integer >= 0")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise bad("temperature", "must be a number >= 0")
        if not isinstance(self.tensor_parallel_size, int) or self.tensor_parallel_size < 1:
            raise bad("tensor_parallel_size", "must be a positive integer")
        if self.compare_step_kinds is not None:
            unknown = [k for k in self.compare_step_kinds if k not in STEP_KINDS]
            if not self.compare_step_kinds or unknown:
                raise bad(
                    "compare_step_kinds",
                    f"must be a non-empty subset of {list(STEP_KINDS)}" + (f" (unknown: {unknown})" if unknown else ""),
                )
        # ---- per-test tolerances
        for arg in ("rel_tol", "abs_floor_us"):
            value = getattr(self, arg)
            if value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0
            ):  # (NaN is not >= 0)
                raise bad(arg, "must be a number >= 0")
        if self.fail_on_drift is not None and not isinstance(self.fail_on_drift, bool):
            raise bad("fail_on_drift", "must be True or False")
        self._validate_load_shape(bad)

    # ---- timed pass and load shape (issue 12) -----------------------------------------------
    def _validate_load_shape(self, bad: Callable[[str, str], WorkloadError]) -> None:
        def positive_int(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        if self.timed_repeats is not None and not (
            isinstance(self.timed_repeats, int) and not isinstance(self.timed_repeats, bool) and self.timed_repeats >= 0
        ):
            raise bad("timed_repeats", "must be an integer >= 0 (0: no timed pass)")
        if not positive_int(self.concurrency):
            raise bad("concurrency", "must be a positive integer")
        if self.num_requests is not None and not positive_int(self.num_requests):
            raise bad("num_requests", "must be a positive integer")
        if self.input_len is not None and not positive_int(self.input_len):
            raise bad("input_len", "must be a positive integer (prompt tokens)")
        if self.api not in API_KINDS:
            raise bad("api", f"must be one of {list(API_KINDS)}")
        if self.request_rate is not None and (
            not isinstance(self.request_rate, (int, float))
            or isinstance(self.request_rate, bool)
            or not self.request_rate > 0
        ):
            raise bad("request_rate", "must be a number > 0 (requests per second), or None for all at once")
        if self.arrival not in ARRIVAL_KINDS:
            raise bad("arrival", f"must be one of {list(ARRIVAL_KINDS)}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise bad("seed", "must be an integer")
        if not isinstance(self.with_stack, bool):
            raise bad("with_stack", "must be True or False")

    @property
    def requests_per_timed_repeat(self) -> int:
        return self.num_requests if self.num_requests is not None else max(self.concurrency, len(self.prompts))

    def load_shape(self, repeats: int) -> LoadShape:
        """How the timed pass loads the server; `repeats` resolved by the caller (marker or session)."""
        return LoadShape(
            api="chat" if self.api == "chat" else "completions",
            max_tokens=self.max_tokens,
            ignore_eos=self.ignore_eos,
            temperature=float(self.temperature),
            num_requests=self.requests_per_timed_repeat,
            concurrency=self.concurrency,
            request_rate=None if self.request_rate is None else float(self.request_rate),
            arrival="constant" if self.arrival == "constant" else "poisson",
            seed=self.seed,
            warmup_requests=self.warmup_requests,
            repeats=repeats,
        )

    @property
    def model_name(self) -> str:
        """The name requests use (`--served-model-name` if set, else the model argument)."""
        return self.served_model_name or self.model

    def server_key(self) -> str:
        """Identity of the server this workload needs: workloads with equal keys share one server."""
        ident = {
            "model": self.model,
            "served_model_name": self.served_model_name,
            "server_args": list(self.server_args),
            "env": list(self.env),
            "tensor_parallel_size": self.tensor_parallel_size,
        }
        if self.with_stack:  # a profiler setting of the server; only in the key when asked, so keys stay
            ident["with_stack"] = True
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def completion_requests(self) -> list[dict[str, Any]]:
        """The OpenAI-compatible /v1/completions bodies of one profiled pass."""
        base = {
            "model": self.model_name,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "ignore_eos": self.ignore_eos,
        }
        if self.batch:
            prompt: Any = self.prompts[0] if len(self.prompts) == 1 else list(self.prompts)
            return [dict(base, prompt=prompt)]
        return [dict(base, prompt=p) for p in self.prompts]

    # ---- the profiled pass under the load shape (issue 12) ------------------------------------
    @property
    def has_load_shape(self) -> bool:
        """True when the marker asks for more than the seed's one batched completion request."""
        return (
            self.api != "completions"
            or self.concurrency != 1
            or self.input_len is not None
            or self.num_requests is not None
        )

    def profiled_requests(self, prompts: list[str] | None = None) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """(path, body) of each request of one profiled pass, and how many run at once.

        Without a load shape: `completion_requests()`, all at once (as before). With one: the timed
        pass's requests (api, prompts cycled, `requests_per_timed_repeat`), not streamed: one batched
        completion request when all would be in flight at once (batch=True), else at most
        `concurrency` in flight (chat, or fewer in flight than requests: the step structure then
        depends on arrival). `prompts` replaces the marker's (the exact-length ones built on the server).
        """
        if not self.has_load_shape:
            bodies = self.completion_requests()
            return [("/v1/completions", b) for b in bodies], len(bodies)
        use = prompts or list(self.prompts)
        n = self.requests_per_timed_repeat
        if self.api == "completions" and self.batch and self.concurrency >= n:
            # All in flight at once: one batched request, which vLLM admits into the same steps in
            # every repeat. Separate concurrent requests would split between steps by arrival
            # (seen on the vLLM CPU server: 5 decode steps in one repeat, 10 in the next), and
            # repeats of a different step structure cannot be combined.
            prompt_list = [use[i % len(use)] for i in range(n)]
            batched = {
                "model": self.model_name,
                "temperature": self.temperature,
                "ignore_eos": self.ignore_eos,
                "max_tokens": self.max_tokens,
                "prompt": prompt_list[0] if n == 1 else prompt_list,
            }
            return [("/v1/completions", batched)], 1
        out: list[tuple[str, dict[str, Any]]] = []
        for i in range(self.requests_per_timed_repeat):
            prompt = use[i % len(use)]
            body: dict[str, Any] = {
                "model": self.model_name,
                "temperature": self.temperature,
                "ignore_eos": self.ignore_eos,
            }
            if self.api == "chat":
                body.update(messages=[{"role": "user", "content": prompt}], max_completion_tokens=self.max_tokens)
                out.append(("/v1/chat/completions", body))
            else:
                body.update(prompt=prompt, max_tokens=self.max_tokens)
                out.append(("/v1/completions", body))
        return out, self.concurrency

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prompts"] = list(self.prompts)
        # The record edge (baselines are committed, results shared): secret values never leave here.
        d["server_args"] = redact_args(self.server_args)
        d["env"] = redact_env(dict(self.env))
        if self.compare_step_kinds is not None:
            d["compare_step_kinds"] = list(self.compare_step_kinds)
        for arg in TOLERANCE_ARGS:  # unset: left out, so baselines recorded by 0.1.0 re-record unchanged
            if d[arg] is None:
                del d[arg]
        return d
