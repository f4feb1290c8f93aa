#!/usr/bin/env bash
# Device side, after scripts/gpu-validate-all.sh was started: wait (at most WAIT_S seconds) until
# a step finishes that was not collected yet, then pack every finished, uncollected step into
# OUT/STEP.tgz (log, results, report, baselines) and OUT/STEP-traces.tgz (kept traces); print
# the driver's progress.   scripts/gpu-collect.sh WORK OUT [WAIT_S]
set -u
work=$1; out=$2; wait_s=${3:-540}
t0=$(date +%s)
while :; do
  packed=0
  for rc in "$work"/*.rc; do
    [ -e "$rc" ] || continue
    name=$(basename "$rc" .rc)
    [ -e "$work/$name.sent" ] && continue
    tar -C "$work/out/$name" -czf "$out/$name.tgz" --exclude "$name-traces.tgz" . 2>/dev/null
    [ -e "$work/out/$name/$name-traces.tgz" ] && cp "$work/out/$name/$name-traces.tgz" "$out/"
    [ -e "$work/history.sqlite" ] && cp "$work/history.sqlite" "$out/"
    touch "$work/$name.sent"; packed=$((packed + 1))
    echo "packed $name (rc $(cat "$rc"))"
  done
  if [ "$packed" -gt 0 ] || [ -e "$work/all.done" ] || [ $(( $(date +%s) - t0 )) -ge "$wait_s" ]; then break; fi
  sleep 5
done
grep -E "^== |passed|failed|error" "$work/driver.log" | tail -30
tail -5 "$work/driver.log"
ls -la "$out"
