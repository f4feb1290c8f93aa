#!/usr/bin/env bash
# Run the GPU suite (tests/gpu) through the plugin on a machine where `python3` can import
# vLLM (docs/gpu-validation.md says how it was done on the H100 device machine).
#   scripts/gpu-validate.sh OUTDIR NAME [extra pytest args...]
# Baselines live in $GPU_BASELINES (default /tmp/gpu-baselines) so consecutive runs share
# them; the log, results file and report (and the traces with KEEP_TRACES=1) are written/packed
# into OUTDIR.
set -uo pipefail
out=$1; name=$2; shift 2
base=${GPU_BASELINES:-/tmp/gpu-baselines}
mkdir -p "$out" "$base"
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=${VLLM_SITE:+$VLLM_SITE:}$PWD/src${PYTHONPATH:+:$PYTHONPATH}
t0=$(date +%s)
python3 -m pytest -p pytest_vllm_profile.plugin tests/gpu --vllm-profile --vllm-python=python3 \
  --baseline-dir="$base" --vllm-trace-root="/tmp/gpu-traces/$name" \
  --vllm-results="$out/$name-results.json" --vllm-report="/tmp/gpu-report/$name" -v -rA "$@" 2>&1 | tee "$out/$name.log"
rc=${PIPESTATUS[0]}
echo "$name: pytest exit $rc after $(( $(date +%s) - t0 )) s" | tee -a "$out/$name.log"
tar -C "$(dirname "$base")" -czf "$out/baselines.tgz" "$(basename "$base")"
tar -C /tmp/gpu-report -czf "$out/$name-report.tgz" "$name" 2>/dev/null
if [ -n "${KEEP_TRACES:-}" ]; then tar -C /tmp/gpu-traces -czf "$out/$name-traces.tgz" "$name" 2>/dev/null; fi
exit "$rc"
