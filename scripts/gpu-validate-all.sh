#!/usr/bin/env bash
# Every GPU validation run of docs/gpu-validation.md, one after the other, on one GPU machine
# (the compile cache the first boot fills is what makes the later boots warm):
#   setsid nohup bash scripts/gpu-validate-all.sh WORK > WORK/driver.log 2>&1 &
# Each step is `scripts/gpu-validate.sh WORK/out/STEP STEP ...`; `WORK/STEP.rc` holds its exit
# code when it is done (scripts/gpu-collect.sh packs finished steps). Steps, in order of need:
#   torch-record   both tests, --update-baselines (H200 baselines), history on, traces kept
#   torch-rerun    same again on a fresh server: must pass
#   nsys-record / nsys-rerun   --vllm-profiler=nsys, default repeats, own baseline folder
#   eager          -k seed with --enforce-eager against the torch baselines: must fail on latency/step time
#   triton         -k seed with --attention-backend=TRITON_ATTN: must fail on the attention kernels
#   calib1..3      -k seed re-runs, fresh server each: same-config runs for the calibration
# Environment: VLLM_SITE (PYTHONPATH entries where vLLM is), NSYS (the nsys executable).
set -u
work=$1
mkdir -p "$work/out"
export GPU_BASELINES=$work/baselines
nsys_args=(--vllm-profiler=nsys ${NSYS:+--vllm-nsys=$NSYS} --vllm-capture-timeout=240)
step() {  # step NAME [env assignments --] pytest args...
  local name=$1; shift
  echo "== $name start $(date -u +%T)"
  bash scripts/gpu-validate.sh "$work/out/$name" "$name" -k "not tp2" "$@"
  local rc=$?
  echo "$rc" > "$work/$name.rc"
  echo "== $name rc=$rc end $(date -u +%T)"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader
  return $rc
}
KEEP_TRACES=1 step torch-record --update-baselines --vllm-history="$work/history.sqlite"
KEEP_TRACES=1 step torch-rerun --vllm-history="$work/history.sqlite"
GPU_BASELINES=$work/baselines-nsys step nsys-record "${nsys_args[@]}" --update-baselines --vllm-history=off
if [ "$(cat "$work/nsys-record.rc")" != 0 ]; then  # cuda-range (the GPU default) failed: the session mode
  nsys_args+=(--vllm-nsys-mode=session)
  GPU_BASELINES=$work/baselines-nsys-session step nsys-record-session "${nsys_args[@]}" --update-baselines --vllm-history=off
  GPU_BASELINES=$work/baselines-nsys-session step nsys-rerun "${nsys_args[@]}" --vllm-history=off
else
  GPU_BASELINES=$work/baselines-nsys step nsys-rerun "${nsys_args[@]}" --vllm-history=off
fi
step eager -k seed --vllm-server-arg=--enforce-eager --vllm-history=off
step triton -k seed --vllm-server-arg=--attention-backend=TRITON_ATTN --vllm-history=off
for i in 1 2 3; do KEEP_TRACES=1 step calib$i -k seed --vllm-history="$work/history.sqlite"; done
echo "== all done $(date -u +%T)"
touch "$work/all.done"
