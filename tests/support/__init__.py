"""Shared parts of the test layers: builders, doubles, paths and real-server helpers.

Test modules import from here and never from each other. The modules:
- `paths`: where the repository, src, docs and tests/data are (the one place that computes them).
- `summaries`: summaries built to a known shape (`built_summary`, `built_one_kernel_summary`)
  and `scaled_decode`, a decode slowdown applied to a real summary.
- `report_inputs`: real results and summaries (tests/data) for the report and history tests.
- `nsys_exports`: nsys-schema SQLite files built from a real torch trace.
- `nsys_double`: a stand-in `nsys` script.
- `vllm_double`: `RecordedTraceDouble`, an HTTP server speaking vLLM's endpoints that writes a
  real recorded trace on /stop_profile.
- `double_sessions`: the plugin's pytester sessions against that double (tests/plugin).
- `cpu_vllm`: the real vLLM CPU environment, the tiny model and the shared real server.
- `podman_service`: a real Podman API service and what runs in its containers (tests/e2e).
- `scheduler_delay`: a real injected delay in the vLLM scheduler (a sitecustomize).
- `e2e`: the inner `pytest --vllm-profile` project run in a subprocess against real servers.

Fixtures defined here are made visible by the conftest of the layer that may use them: the
root tests/conftest.py for all layers, tests/plugin/conftest.py, tests/e2e/conftest.py (only
there: the fixtures that boot a real server, so a unit or plugin test cannot ask for one).
"""
