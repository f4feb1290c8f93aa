"""The default of every session setting, and the choices of each choice setting, declared once.

The option table (`option_table.OPTIONS`) names these as its defaults, and the library's own
classes (`settings.CaptureSettings`, `pool.PoolSettings`, `launchers.base.ServerSpec`,
`capture.ProfileCapture`, the docker launcher) name the same constant instead of repeating
the value. No imports: every layer may read them.
"""

from __future__ import annotations

# The built-in launchers; a `pytest_vllm_profile_make_launcher` hook implementation may serve
# any of them differently (docs/hooks.md).
LAUNCHERS = ("process", "docker", "url")
PROFILERS = ("torch", "nsys")
# How an nsys run captures (issue 14, launchers/nsys.py): auto picks per server -- cuda-range where
# vLLM's cuda profiler opens the range (GPU builds), else an nsys interactive session.
NSYS_MODES = ("auto", "cuda-range", "session")
DEFAULT_NSYS_MODE = "auto"

DEFAULT_LAUNCHER = "process"
DEFAULT_PROFILER = "torch"
# Profiles per test, combined into their median: one capture against one failed even a 35 %
# tolerance on the CPU server, three on both sides passed the default tolerances in 3 of 3
# re-checks (docs/cpu-backend.md).
DEFAULT_REPEATS = 3
# Timed (unprofiled) repeats per test (issue 12), unless the marker says. Three: the smallest
# number whose run-to-run spread (TimedPassResult.run_medians) is a noise estimate at all; a
# repeat costs one unprofiled pass of the workload (on the vLLM CPU server's tiny model 0.2-1 s,
# against 2-4 s for a profiled repeat with its /stop_profile flush), so it stays cheap.
DEFAULT_TIMED_REPEATS = 3
# Start to healthy: 249.5-263.5 s measured for a cold Qwen3-8B boot on an H100 (torch.compile
# and CUDA-graph capture, docs/gpu-validation.md); bigger models and cold image pulls take longer.
DEFAULT_HEALTH_TIMEOUT_S = 900.0
# One HTTP request of a capture: a big /stop_profile flush of the trace takes minutes.
DEFAULT_CAPTURE_TIMEOUT_S = 600.0
DEFAULT_CAPTURE_POLL_S = 1.0  # between looks for new trace files (one capture took 3-4 s on an H100)
DEFAULT_MAX_SERVERS = 1  # two servers on one GPU set would fight for its memory
DEFAULT_WORKERS_PER_GPU = 1
DEFAULT_IMAGE = "vllm/vllm-openai"  # the docker launcher's image (its tag: latest)
# Folders and files under the rootdir when the option is not given.
DEFAULT_BASELINE_DIR = "baselines"
DEFAULT_TRACE_ROOT = ".vllm-profile/sessions"
DEFAULT_RESULTS_FILE = ".vllm-profile/results.json"  # written only with --vllm-profile
# Issue 13: the run history database (SQLite file under rootdir, or a postgresql:// URL);
# appended to only with --vllm-profile. HISTORY_OFF turns it off.
DEFAULT_HISTORY_FILE = ".vllm-profile/history.sqlite"
HISTORY_OFF = "off"

# Issue 13 item 3, across vLLM versions: what the kernel-set diff does to the verdict.
CROSS_VERSION_DRIFT = ("report", "fail")
DEFAULT_CROSS_VERSION_DRIFT = "report"

# Session folders (traces + server logs) kept under the trace root, this one included: 19
# sessions of a two-test project grew .vllm-profile/ to 159 MB (issue 15). 0 keeps all.
DEFAULT_KEEP_SESSIONS = 5
